//! Helpers the model families' decoders share: output checks, shape printing, class picking.
//! They sit below both the decoders and [`super::family`], which dispatches to the decoders,
//! so the dependencies point one way.

use super::engine::OutputTensor;
use super::DetectError;

/// The label of `class_id`, or `"unknown"` when the list is shorter (not reachable when the
/// labels were resolved against the model's class count).
pub(crate) fn label(labels: &[&'static str], class_id: u16) -> &'static str {
    labels.get(class_id as usize).copied().unwrap_or("unknown")
}

/// `[1, 84, 8400]`.
pub(crate) fn shape_str(shape: &[usize]) -> String {
    format!("{shape:?}")
}

/// `[1, 84, ?]`: declared dimensions with `?` where symbolic.
pub(crate) fn dims_str(dims: &[Option<usize>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or_else(|| "?".to_string(), |d| d.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// Checks that `out` holds `shape.iter().product()` values.
pub(crate) fn check_len(out: &OutputTensor, family: &'static str) -> Result<(), DetectError> {
    let want: usize = out.shape.iter().product();
    if out.data.len() == want {
        Ok(())
    } else {
        Err(DetectError::OutputLength {
            family,
            output: out.name.clone(),
            shape: out.shape.clone(),
            values: out.data.len(),
            expected: want,
        })
    }
}

/// The best of the `wanted` classes (ids below `num_classes`) by `score(class)`.
#[inline]
pub(crate) fn best_class(
    wanted: &[u16],
    num_classes: usize,
    score: impl Fn(usize) -> f32,
) -> Option<(u16, f32)> {
    wanted
        .iter()
        .filter(|&&c| (c as usize) < num_classes)
        .map(|&c| (c, score(c as usize)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_print_symbolic_as_question_marks() {
        assert_eq!(dims_str(&[Some(1), None, Some(6)]), "[1, ?, 6]");
        assert_eq!(shape_str(&[1, 84, 8400]), "[1, 84, 8400]");
    }
}
