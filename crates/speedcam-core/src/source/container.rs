//! The few MP4 facts the `mp4` crate does not keep: the sample-entry four-character code of every
//! track (so errors can name `hvc1`, `av01`, ... and `avc3` tracks are found) and the raw `avcC`
//! record. Sample tables and sample reading stay with the `mp4` crate.

use std::io::{Read, Seek, SeekFrom};

/// One track's identity as written in `moov`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrackEntry {
    /// `tkhd` track id.
    pub track_id: u32,
    /// `hdlr` handler type (`vide`, `soun`, ...).
    pub handler: String,
    /// Four-character code of the first sample entry in `stsd` (`avc1`, `hvc1`, `mp4a`, ...).
    pub codec: String,
    /// Body of the `avcC` box inside an `avc1`/`avc3` sample entry.
    pub avcc: Option<Vec<u8>>,
}

/// Decoder configuration of an H.264 track (ISO/IEC 14496-15 `AVCDecoderConfigurationRecord`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AvcConfig {
    /// Bytes per NAL length prefix in samples (1, 2 or 4).
    pub length_size: usize,
    /// Sequence parameter sets (NAL units without prefix).
    pub sps: Vec<Vec<u8>>,
    /// Picture parameter sets (NAL units without prefix).
    pub pps: Vec<Vec<u8>>,
}

/// A box as (four-character type, body without header).
type RawBox<'a> = ([u8; 4], &'a [u8]);

/// Children of a box body.
fn children(buf: &[u8]) -> Result<Vec<RawBox<'_>>, String> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= buf.len() {
        let size32 = u32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]);
        let kind = [buf[pos + 4], buf[pos + 5], buf[pos + 6], buf[pos + 7]];
        let (header, size) = match size32 {
            // "To the end of the file" is only meaningful at the top level; inside a box the
            // `mp4` crate would seek back onto the same header forever.
            0 => {
                return Err(format!(
                    "box `{}` inside another box has size 0",
                    fourcc(&kind)
                ))
            }
            1 => {
                let large = buf
                    .get(pos + 8..pos + 16)
                    .ok_or_else(|| format!("box `{}` cut off", fourcc(&kind)))?;
                let mut b = [0u8; 8];
                b.copy_from_slice(large);
                (
                    16,
                    usize::try_from(u64::from_be_bytes(b)).unwrap_or(usize::MAX),
                )
            }
            n => (8, n as usize),
        };
        if size < header || size > buf.len() - pos {
            return Err(format!(
                "box `{}` claims {size} bytes, {} available",
                fourcc(&kind),
                buf.len() - pos
            ));
        }
        out.push((kind, &buf[pos + header..pos + size]));
        pos += size;
    }
    Ok(out)
}

fn child<'a>(buf: &'a [u8], kind: &[u8; 4]) -> Result<Option<&'a [u8]>, String> {
    Ok(children(buf)?
        .into_iter()
        .find(|(k, _)| k == kind)
        .map(|(_, b)| b))
}

fn fourcc(kind: &[u8]) -> String {
    kind.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

fn be_u32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads the top-level `moov` box of a file of `file_len` bytes and lists its tracks.
pub(crate) fn scan_tracks<R: Read + Seek>(
    r: &mut R,
    file_len: u64,
) -> Result<Vec<TrackEntry>, String> {
    let mut pos = 0u64;
    let mut tracks = None;
    while pos.saturating_add(8) <= file_len {
        r.seek(SeekFrom::Start(pos)).map_err(|e| e.to_string())?;
        let mut head = [0u8; 8];
        r.read_exact(&mut head).map_err(|e| e.to_string())?;
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let (header, size) = match size32 {
            // Legal ("to the end of the file"), but the `mp4` crate loops forever on it.
            0 => {
                return Err(format!(
                    "the `{}` box at byte {pos} has size 0 (\"up to the end of the file\"), which \
                     the MP4 parser cannot follow: re-mux it with `ffmpeg -i IN -c copy OUT.mp4`",
                    fourcc(&head[4..8])
                ))
            }
            1 => {
                let mut b = [0u8; 8];
                r.read_exact(&mut b).map_err(|e| e.to_string())?;
                (16, u64::from_be_bytes(b))
            }
            n => (8, u64::from(n)),
        };
        let plausible = head[4..8]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b' ');
        if size < header || !plausible {
            return Err(format!(
                "no valid MP4 box at byte {pos} (type `{}`, size {size}): this is not an MP4 file \
                 or it is damaged",
                fourcc(&head[4..8])
            ));
        }
        if pos == 0 && size > file_len {
            return Err(format!(
                "the first box (`{}`) claims {size} bytes but the file has {file_len}: this is \
                 not an MP4 file or it is truncated",
                fourcc(&head[4..8])
            ));
        }
        if &head[4..8] == b"moov" {
            if size > file_len - pos {
                return Err(format!(
                    "the moov box at byte {pos} claims {size} bytes but the file ends after {} \
                     (truncated?)",
                    file_len - pos
                ));
            }
            if tracks.is_none() {
                let mut body = vec![0u8; (size - header) as usize];
                r.read_exact(&mut body).map_err(|e| e.to_string())?;
                tracks = Some(tracks_in_moov(&body)?);
            }
        }
        // The boxes after moov are checked too: the `mp4` crate walks every top-level box.
        pos = pos.saturating_add(size);
    }
    tracks.ok_or_else(|| {
        "no moov box (the index is missing: the file is truncated or still being written)".into()
    })
}

/// Boxes whose body is a list of boxes that the `mp4` crate walks in a loop (sample entries
/// are read one header at a time, so they are left to it).
fn is_container(kind: &[u8; 4]) -> bool {
    matches!(
        kind,
        b"moov"
            | b"trak"
            | b"mdia"
            | b"minf"
            | b"stbl"
            | b"dinf"
            | b"edts"
            | b"mvex"
            | b"udta"
            | b"moof"
            | b"traf"
            | b"ilst"
    )
}

/// Checks the sizes of every box in the tree under `buf` (a container body), so that the `mp4`
/// crate never meets a box of size 0 or one smaller than its header (it would loop forever).
fn check_tree(buf: &[u8], depth: usize) -> Result<(), String> {
    if depth > 16 {
        return Err("boxes nested more than 16 deep".into());
    }
    for (kind, body) in children(buf)? {
        // meta: version and flags first, unless the writer left them out (the `mp4` crate
        // accepts both).
        let skip = match &kind {
            b"meta" if body.starts_with(&[0, 0, 0, 0]) => 4,
            b"meta" => 0,
            // Version, flags and an entry count, then the entries, which the `mp4` crate walks
            // for as many as the count says while it has not reached the end.
            b"dref" if body.len() >= 8 => 8,
            b"dref" => continue,
            k if is_container(k) => 0,
            _ => continue,
        };
        check_tree(&body[skip..], depth + 1).map_err(|e| format!("in `{}`: {e}", fourcc(&kind)))?;
    }
    Ok(())
}

fn tracks_in_moov(moov: &[u8]) -> Result<Vec<TrackEntry>, String> {
    check_tree(moov, 0)?;
    let mut out = Vec::new();
    for (kind, trak) in children(moov)? {
        if &kind != b"trak" {
            continue;
        }
        let tkhd = child(trak, b"tkhd")?.ok_or("trak without tkhd")?;
        let id_at = if tkhd.first() == Some(&1) { 20 } else { 12 };
        let track_id = be_u32(tkhd, id_at).ok_or("tkhd too short")?;
        let mdia = child(trak, b"mdia")?.ok_or("trak without mdia")?;
        let handler = child(mdia, b"hdlr")?
            .and_then(|h| h.get(8..12))
            .map(fourcc)
            .unwrap_or_else(|| "????".into());
        let stsd = child(mdia, b"minf")?
            .map(|minf| child(minf, b"stbl"))
            .transpose()?
            .flatten()
            .map(|stbl| child(stbl, b"stsd"))
            .transpose()?
            .flatten();
        // stsd: version/flags (4), entry_count (4), then the sample entries.
        let entries = match stsd.and_then(|s| s.get(8..)) {
            Some(e) => children(e)?,
            None => Vec::new(),
        };
        let (codec, avcc) = match entries.first() {
            Some((kind, body)) => {
                let avcc = if kind == b"avc1" || kind == b"avc3" {
                    // VisualSampleEntry fields take 78 bytes before the child boxes.
                    match body.get(78..) {
                        Some(rest) => child(rest, b"avcC")?.map(<[u8]>::to_vec),
                        None => None,
                    }
                } else {
                    None
                };
                (fourcc(kind), avcc)
            }
            None => ("none".to_string(), None),
        };
        out.push(TrackEntry {
            track_id,
            handler,
            codec,
            avcc,
        });
    }
    Ok(out)
}

/// Parses an `avcC` body.
pub(crate) fn parse_avcc(buf: &[u8]) -> Result<AvcConfig, String> {
    let short = || "avcC record is cut off".to_string();
    let length_size = usize::from(buf.get(4).ok_or_else(short)? & 0x03) + 1;
    if length_size == 3 {
        return Err("avcC declares 3-byte NAL lengths, which ISO/IEC 14496-15 forbids".into());
    }
    let mut pos = 5;
    let mut read_sets = |count_mask: u8| -> Result<Vec<Vec<u8>>, String> {
        let count = buf.get(pos).ok_or_else(short)? & count_mask;
        pos += 1;
        let mut sets = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let len_bytes = buf.get(pos..pos + 2).ok_or_else(short)?;
            let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
            let set = buf.get(pos + 2..pos + 2 + len).ok_or_else(short)?;
            sets.push(set.to_vec());
            pos += 2 + len;
        }
        Ok(sets)
    };
    let sps = read_sets(0x1f)?;
    let pps = read_sets(0xff)?;
    Ok(AvcConfig {
        length_size,
        sps,
        pps,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Cursor;

    pub(crate) fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    pub(crate) fn trak(id: u32, handler: &[u8; 4], entry: Vec<u8>) -> Vec<u8> {
        let mut tkhd = vec![0u8; 12];
        tkhd.extend_from_slice(&id.to_be_bytes());
        tkhd.resize(84, 0);
        let mut hdlr = vec![0u8; 8];
        hdlr.extend_from_slice(handler);
        hdlr.resize(24, 0);
        let mut stsd = vec![0, 0, 0, 0, 0, 0, 0, 1];
        stsd.extend_from_slice(&entry);
        let stbl = mp4_box(b"stbl", &mp4_box(b"stsd", &stsd));
        let minf = mp4_box(b"minf", &stbl);
        let mut mdia = mp4_box(b"hdlr", &hdlr);
        mdia.extend_from_slice(&minf);
        let mut body = mp4_box(b"tkhd", &tkhd);
        body.extend_from_slice(&mp4_box(b"mdia", &mdia));
        mp4_box(b"trak", &body)
    }

    #[test]
    fn finds_codecs_and_avcc() {
        let avcc = [1u8, 100, 0, 30, 0xff, 0xe1, 0, 2, 0x67, 0x64, 1, 0, 1, 0x68];
        let mut avc3 = vec![0u8; 78];
        avc3.extend_from_slice(&mp4_box(b"avcC", &avcc));
        let mut moov = trak(1, b"soun", mp4_box(b"mp4a", &[0u8; 20]));
        moov.extend_from_slice(&trak(2, b"vide", mp4_box(b"avc3", &avc3)));
        let mut file = mp4_box(b"ftyp", b"isom\0\0\0\0");
        file.extend_from_slice(&mp4_box(b"moov", &moov));
        let len = file.len() as u64;
        let tracks = scan_tracks(&mut Cursor::new(file), len).unwrap();
        assert_eq!(tracks.len(), 2);
        assert_eq!(
            (tracks[0].handler.as_str(), tracks[0].codec.as_str()),
            ("soun", "mp4a")
        );
        assert_eq!(tracks[1].track_id, 2);
        assert_eq!(tracks[1].codec, "avc3");
        let cfg = parse_avcc(tracks[1].avcc.as_deref().unwrap()).unwrap();
        assert_eq!(cfg.length_size, 4);
        assert_eq!(cfg.sps, vec![vec![0x67, 0x64]]);
        assert_eq!(cfg.pps, vec![vec![0x68]]);
    }

    #[test]
    fn missing_moov_and_bad_sizes_are_errors() {
        let file = mp4_box(b"ftyp", b"isom\0\0\0\0");
        let len = file.len() as u64;
        assert!(scan_tracks(&mut Cursor::new(file), len).is_err());
        let mut file = 1000u32.to_be_bytes().to_vec();
        file.extend_from_slice(b"moov");
        file.extend_from_slice(&[0u8; 20]);
        let len = file.len() as u64;
        let err = scan_tracks(&mut Cursor::new(file), len).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        assert!(parse_avcc(&[1, 100, 0]).is_err());
        assert!(parse_avcc(&[1, 100, 0, 30, 0xff, 0xe1, 0, 9, 0x67]).is_err());
    }

    fn file_with(moov_body: &[u8], after: &[u8]) -> Result<Vec<TrackEntry>, String> {
        let mut file = mp4_box(b"ftyp", b"isom\0\0\0\0");
        file.extend_from_slice(&mp4_box(b"moov", moov_body));
        file.extend_from_slice(after);
        let len = file.len() as u64;
        scan_tracks(&mut Cursor::new(file), len)
    }

    #[test]
    fn boxes_the_mp4_crate_loops_on_are_errors() {
        // Found by the `mp4` fuzz target: a box of size 0 inside stbl (here `st\0\0`) made
        // `Mp4Reader::read_header` seek back onto the same header forever, so replay hung.
        let zero = [0, 0, 0, 0, b's', b't', 0, 0, 0, 0, 0, 1];
        let minf = mp4_box(b"minf", &mp4_box(b"stbl", &zero));
        let moov = mp4_box(b"trak", &mp4_box(b"mdia", &minf));
        let err = file_with(&moov, &[]).unwrap_err();
        assert!(err.contains("size 0") && err.contains("in `stbl`"), "{err}");
        // A size below the header, in a container that scan_tracks itself does not read.
        let udta = mp4_box(b"udta", &[0, 0, 0, 4, b'm', b'e', b't', b'a']);
        let err = file_with(&mp4_box(b"trak", &udta), &[]).unwrap_err();
        assert!(err.contains("claims 4 bytes"), "{err}");
        // A top-level box of size 0 ("to the end of the file") after moov.
        let err = file_with(&[], &[0, 0, 0, 0, b'm', b'd', b'a', b't', 1, 2, 3]).unwrap_err();
        assert!(err.contains("size 0") && err.contains("ffmpeg"), "{err}");
        // Found next: a size-0 box inside udta/meta (after its version and flags).
        let meta = mp4_box(b"meta", &[0, 0, 0, 0, 0, 0, 0, 0, b'h', b'd', b'l', b'r']);
        let err = file_with(&mp4_box(b"udta", &meta), &[]).unwrap_err();
        assert!(err.contains("in `meta`") && err.contains("size 0"), "{err}");
        // Found next: a size-0 entry in dinf/dref under an entry count of 4 billion (the
        // crate seeked back onto it once per entry).
        let dref = mp4_box(
            b"dref",
            &[
                0, 0, 0, 0, 0xff, 0xa, 0, 0, 0, 0, 0, 0, b'u', b'r', b'l', b' ', 0, 0, 0, 1,
            ],
        );
        let minf = mp4_box(b"minf", &mp4_box(b"dinf", &dref));
        let err = file_with(&mp4_box(b"trak", &mp4_box(b"mdia", &minf)), &[]).unwrap_err();
        assert!(err.contains("in `dref`") && err.contains("size 0"), "{err}");
        let url = mp4_box(b"url ", &[0, 0, 0, 1]);
        let dref = mp4_box(b"dref", &[&[0, 0, 0, 0, 0, 0, 0, 1], &url[..]].concat());
        let udta = mp4_box(b"udta", &mp4_box(b"dinf", &dref));
        assert_eq!(file_with(&udta, &[]).unwrap(), vec![]);
        // Nesting without end is cut off.
        let mut deep = mp4_box(b"free", &[]);
        for _ in 0..40 {
            deep = mp4_box(b"udta", &deep);
        }
        assert!(file_with(&deep, &[]).unwrap_err().contains("nested"));
        // The same boxes with sound sizes are fine.
        assert_eq!(file_with(&mp4_box(b"udta", &[]), &[]).unwrap(), vec![]);
    }
}
