//! How a batch becomes model runs: instances cut into runs of at most `max_batch` images, and a
//! series' slices stacked into one volume.

use std::ops::Range;

use super::assembly;

/// Part of one instance's frames in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPart {
    /// Which instance (index into the list given to [`plan_runs`]).
    pub item: usize,
    /// Its frames in this run.
    pub frames: Range<usize>,
}

/// Cuts instances of `frames[i]` images each, in the given order, into runs of at most
/// `max_batch` images; an instance that does not fit the rest of a run continues in the next.
pub fn plan_runs(frames: &[usize], max_batch: usize) -> Vec<Vec<RunPart>> {
    let max_batch = max_batch.max(1);
    let mut runs: Vec<Vec<RunPart>> = Vec::new();
    let mut filled = max_batch;
    for (item, &count) in frames.iter().enumerate() {
        let mut start = 0;
        while start < count {
            if filled == max_batch {
                runs.push(Vec::new());
                filled = 0;
            }
            let take = (count - start).min(max_batch - filled);
            runs.last_mut().expect("a run was pushed").push(RunPart { item, frames: start..start + take });
            filled += take;
            start += take;
        }
    }
    runs
}

/// A volume stacked from a series' slices, in patient order.
#[derive(Debug)]
pub struct StackedSeries {
    /// `[C, D, H, W]` values.
    pub data: Vec<f32>,
    /// `D`.
    pub depth: usize,
    /// For each slice of the volume, in order: the index of the instance (into the run's
    /// slices) it came from.
    pub slice_instance: Vec<usize>,
    /// Whether the spacing is uneven (a slice missing, say).
    pub irregular_spacing: bool,
}

/// Stacks the slices of every instance along their normal (PS3.3 C.7.6.2.1.1).
pub fn stack_series(slices: &[assembly::Slices], image_shape: [usize; 3]) -> Result<StackedSeries, String> {
    let [c, h, w] = image_shape;
    let (plane, per) = (h * w, c * h * w);
    let mut geometry = Vec::new();
    let mut sources = Vec::new();
    for (instance, s) in slices.iter().enumerate() {
        let [frames, sc, sh, sw] = s.tensor.shape();
        if [sc, sh, sw] != image_shape {
            return Err(format!(
                "instance {} has images of [{sc}, {sh}, {sw}], the model takes [{c}, {h}, {w}]",
                s.sop_instance_uid
            ));
        }
        for frame in 0..frames {
            geometry.push(s.geometry[frame]);
            sources.push((instance, frame));
        }
    }
    let order =
        radstream_kernels::order_slices(&geometry).map_err(|e| format!("the slices are not one volume: {e}"))?;
    let depth = order.order.len();
    let mut data = Vec::with_capacity(c * depth * plane);
    for channel in 0..c {
        for &i in &order.order {
            let (instance, frame) = sources[i];
            let image = &slices[instance].tensor.data()[frame * per..(frame + 1) * per];
            data.extend_from_slice(&image[channel * plane..(channel + 1) * plane]);
        }
    }
    let slice_instance = order.order.iter().map(|&i| sources[i].0).collect();
    Ok(StackedSeries { data, depth, slice_instance, irregular_spacing: order.irregular_spacing })
}
