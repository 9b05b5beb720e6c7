//! What a synthetic image shows and how: the body part, the plane it cuts through and what its
//! values mean. Shared by the plans, the lesions and the pixels.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BodyPart {
    Head,
    Chest,
    Abdomen,
    Knee,
}

impl BodyPart {
    /// The BodyPartExamined defined term.
    pub(super) fn code(self) -> &'static str {
        match self {
            BodyPart::Head => "HEAD",
            BodyPart::Chest => "CHEST",
            BodyPart::Abdomen => "ABDOMEN",
            BodyPart::Knee => "KNEE",
        }
    }
}

/// How an image is cut through (or projected across) the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Plane {
    Axial,
    Sagittal,
    Coronal,
    /// A frontal projection: CR PA/AP views and the CT localizer.
    Frontal,
    /// A lateral projection: CR lateral views.
    Lateral,
}

/// What the pixel values mean, which decides the value of each tissue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Contrast {
    /// Hounsfield units.
    Ct,
    /// Projection radiograph, attenuating tissue bright.
    Xray,
    MrT1,
    MrT2,
    MrPd,
    MrFlair,
}
