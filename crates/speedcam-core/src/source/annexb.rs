//! MP4 (`avcC`, length-prefixed NAL units) to Annex B (start-code-prefixed) conversion,
//! which is what openh264 consumes.

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// A sample whose NAL length prefixes do not match its size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AnnexBError {
    /// A length prefix is cut off by the end of the sample.
    #[error("NAL length prefix at byte {offset} is cut off by the end of the {len}-byte sample")]
    TruncatedPrefix {
        /// Byte offset of the prefix in the sample.
        offset: usize,
        /// Sample size in bytes.
        len: usize,
    },
    /// A NAL unit claims more bytes than the sample has left.
    #[error("NAL unit at byte {offset} claims {nal_len} bytes, only {left} left in the sample")]
    Overrun {
        /// Byte offset of the prefix in the sample.
        offset: usize,
        /// Claimed NAL size.
        nal_len: usize,
        /// Bytes left after the prefix.
        left: usize,
    },
    /// The sample holds no NAL unit at all.
    #[error("sample holds no NAL unit")]
    Empty,
}

/// Appends `nal` to `out` behind a 4-byte start code.
pub(crate) fn push_nal(out: &mut Vec<u8>, nal: &[u8]) {
    out.extend_from_slice(&START_CODE);
    out.extend_from_slice(nal);
}

/// Splits `sample` (NAL units each behind a big-endian length of `length_size` bytes, 1..=4)
/// into its NAL units. Zero-length NAL units are skipped.
pub(crate) fn split_nals(sample: &[u8], length_size: usize) -> Result<Vec<&[u8]>, AnnexBError> {
    let mut nals = Vec::new();
    let mut offset = 0;
    while offset < sample.len() {
        let Some(prefix) = sample.get(offset..offset + length_size) else {
            return Err(AnnexBError::TruncatedPrefix {
                offset,
                len: sample.len(),
            });
        };
        let nal_len = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let start = offset + length_size;
        let left = sample.len() - start;
        if nal_len > left {
            return Err(AnnexBError::Overrun {
                offset,
                nal_len,
                left,
            });
        }
        if nal_len > 0 {
            nals.push(&sample[start..start + nal_len]);
        }
        offset = start + nal_len;
    }
    if nals.is_empty() {
        return Err(AnnexBError::Empty);
    }
    Ok(nals)
}

/// Appends the NAL units of a length-prefixed `sample` to `out` as Annex B.
pub(crate) fn append_sample(
    out: &mut Vec<u8>,
    sample: &[u8],
    length_size: usize,
) -> Result<(), AnnexBError> {
    for nal in split_nals(sample, length_size)? {
        push_nal(out, nal);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn length_prefixed(nals: &[Vec<u8>], length_size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for nal in nals {
            let len = nal.len().to_be_bytes();
            out.extend_from_slice(&len[len.len() - length_size..]);
            out.extend_from_slice(nal);
        }
        out
    }

    proptest! {
        #[test]
        fn converts_every_nal(
            nals in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..200), 1..6),
            length_size in prop::sample::select(vec![2usize, 4]),
        ) {
            let sample = length_prefixed(&nals, length_size);
            let mut out = Vec::new();
            append_sample(&mut out, &sample, length_size).unwrap();
            let mut want = Vec::new();
            for nal in &nals {
                want.extend_from_slice(&START_CODE);
                want.extend_from_slice(nal);
            }
            prop_assert_eq!(out, want);
        }

        #[test]
        fn never_panics_on_garbage(
            sample in prop::collection::vec(any::<u8>(), 0..300),
            length_size in 1usize..=4,
        ) {
            let mut out = Vec::new();
            let _ = append_sample(&mut out, &sample, length_size);
        }
    }

    #[test]
    fn reports_overrun_and_truncation() {
        let mut out = Vec::new();
        let err = append_sample(&mut out, &[0, 0, 0, 9, 1, 2], 4).unwrap_err();
        assert_eq!(
            err,
            AnnexBError::Overrun {
                offset: 0,
                nal_len: 9,
                left: 2
            }
        );
        let err = append_sample(&mut out, &[0, 0, 0, 1, 7, 0, 0], 4).unwrap_err();
        assert_eq!(err, AnnexBError::TruncatedPrefix { offset: 5, len: 7 });
        assert_eq!(append_sample(&mut out, &[], 4), Err(AnnexBError::Empty));
    }
}
