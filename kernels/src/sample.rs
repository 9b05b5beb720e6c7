//! Stored pixel values: the integer types Pixel Data holds after decoding.
//!
//! The trait is sealed because every type it admits needs a GPU kernel instantiation too;
//! [`SampleKind`] is how the GPU twin will pick it at run time.

mod sealed {
    pub trait Sealed {}
}

/// Which integer type a stored sample is; a GPU backend selects its kernel by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SampleKind {
    /// `u8`: Bits Allocated 8, Pixel Representation 0.
    U8,
    /// `i8`: Bits Allocated 8, Pixel Representation 1.
    I8,
    /// `u16`: Bits Allocated 16, Pixel Representation 0.
    U16,
    /// `i16`: Bits Allocated 16, Pixel Representation 1.
    I16,
    /// `u32`: Bits Allocated 32, Pixel Representation 0.
    U32,
    /// `i32`: Bits Allocated 32, Pixel Representation 1.
    I32,
}

/// A stored pixel value of one of the integer types of decoded Pixel Data.
///
/// Sign extension of samples narrower than their container (Bits Stored < Bits Allocated) is
/// the decoder's job: a value arrives here already as the number it stands for.
pub trait StoredSample: Copy + Ord + Send + Sync + 'static + sealed::Sealed {
    /// The type tag of `Self`.
    const KIND: SampleKind;

    /// The value as `f64`; exact for every admitted type.
    fn to_f64(self) -> f64;
}

macro_rules! stored_sample {
    ($($ty:ty => $kind:ident),* $(,)?) => {$(
        impl sealed::Sealed for $ty {}

        impl StoredSample for $ty {
            const KIND: SampleKind = SampleKind::$kind;

            #[inline(always)]
            fn to_f64(self) -> f64 {
                f64::from(self)
            }
        }
    )*};
}

stored_sample!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32);

/// The smallest and largest stored value, or `None` for an empty slice.
pub fn stored_min_max<S: StoredSample>(stored: &[S]) -> Option<(S, S)> {
    let &first = stored.first()?;
    // Two plain folds over values: these vectorize, a fold over a pair or `Iterator::min` do not.
    Some((stored.iter().copied().fold(first, Ord::min), stored.iter().copied().fold(first, Ord::max)))
}

#[cfg(test)]
mod tests;
