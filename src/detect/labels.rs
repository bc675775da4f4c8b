//! Class labels: where a model's label list comes from, and how names become `&'static str`.
//!
//! Labels are taken, in order of preference, from the model file (Ultralytics exports store a
//! `names` metadata property holding a Python dict literal such as `{0: 'person', 1: 'bicycle'}`),
//! from `detector.class_names` in the config, and finally COCO-80 when the model has 80 classes
//! (or does not say how many, as end-to-end exports).
//!
//! [`super::Detection::class`] is `&'static str` so detections stay cheap to copy through the
//! tracker and event pipeline. Names that come from a model file are not known at compile time, so
//! `intern` leaks each distinct name once into a process-wide set: a daemon loads a handful of
//! models with at most a few hundred labels, so the leak is bounded by the distinct names ever
//! seen, not by frames or reloads.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use super::{DetectError, COCO_CLASSES};

/// Longest label list accepted from a model file or config (guards against absurd metadata).
pub(crate) const MAX_CLASSES: usize = 10_000;

/// Returns a `&'static str` equal to `name`, leaking a copy only the first time a name is seen
/// (COCO names are returned from [`COCO_CLASSES`] without allocating).
pub(crate) fn intern(name: &str) -> &'static str {
    if let Some(c) = COCO_CLASSES.iter().find(|c| **c == name) {
        return c;
    }
    static SET: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let set = SET.get_or_init(|| Mutex::new(HashSet::new()));
    // A poisoned lock only means another thread panicked mid-insert; the set is still valid.
    let mut set = set.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = set.get(name) {
        return s;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    set.insert(leaked);
    leaked
}

/// A tiny cursor over a metadata string.
struct Cursor<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl Cursor<'_> {
    fn skip_ws(&mut self) {
        while self.chars.peek().is_some_and(|c| c.is_whitespace()) {
            self.chars.next();
        }
    }

    /// Skips whitespace, then consumes `c` if it is next.
    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.chars.peek() == Some(&c) {
            self.chars.next();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected {c:?}, found {}", self.next_desc()))
        }
    }

    fn next_desc(&mut self) -> String {
        match self.chars.peek() {
            Some(c) => format!("{c:?}"),
            None => "the end".into(),
        }
    }

    /// A non-negative decimal integer (Python dict key), at most [`MAX_CLASSES`].
    fn index(&mut self) -> Result<usize, String> {
        self.skip_ws();
        let mut n: usize = 0;
        let mut any = false;
        while let Some(d) = self.chars.peek().and_then(|c| c.to_digit(10)) {
            self.chars.next();
            any = true;
            n = n.saturating_mul(10).saturating_add(d as usize);
        }
        if !any {
            return Err(format!(
                "expected a class index, found {}",
                self.next_desc()
            ));
        }
        if n >= MAX_CLASSES {
            return Err(format!("class index {n} is too large"));
        }
        Ok(n)
    }

    /// A Python string literal in single or double quotes with backslash escapes.
    fn string(&mut self) -> Result<String, String> {
        self.skip_ws();
        let quote = match self.chars.next() {
            Some(q @ ('\'' | '"')) => q,
            Some(c) => return Err(format!("expected a quoted name, found {c:?}")),
            None => return Err("expected a quoted name, found the end".into()),
        };
        let mut out = String::new();
        loop {
            match self.chars.next() {
                None => return Err("unterminated string".into()),
                Some(c) if c == quote => return Ok(out),
                Some('\\') => match self.chars.next() {
                    None => return Err("unterminated string".into()),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('x') => out.push(self.hex(2)?),
                    Some('u') => out.push(self.hex(4)?),
                    Some(c) => out.push(c), // \\, \', \" and anything else literally
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// `digits` hex digits as one char (invalid code points are an error).
    fn hex(&mut self, digits: usize) -> Result<char, String> {
        let mut v = 0u32;
        for _ in 0..digits {
            let d = self
                .chars
                .next()
                .and_then(|c| c.to_digit(16))
                .ok_or("bad \\x or \\u escape")?;
            v = v * 16 + d;
        }
        char::from_u32(v).ok_or_else(|| format!("bad code point {v:#x}"))
    }

    fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.chars.peek().is_none()
    }
}

/// Parses a label list as Ultralytics stores it in the `names` metadata property: a Python dict
/// literal `{0: 'person', 1: 'bicycle'}` whose keys are exactly `0..n`, in any order. A list
/// literal `['person', 'bicycle']` is accepted too. Never panics; the error says what is wrong.
pub(crate) fn parse_names(text: &str) -> Result<Vec<String>, String> {
    let mut c = Cursor {
        chars: text.chars().peekable(),
    };
    let names = if c.eat('[') {
        let mut names = Vec::new();
        while !c.eat(']') {
            names.push(c.string()?);
            if names.len() > MAX_CLASSES {
                return Err(format!("more than {MAX_CLASSES} names"));
            }
            if !c.eat(',') {
                c.expect(']')?;
                break;
            }
        }
        names
    } else {
        c.expect('{')?;
        let mut pairs = Vec::new();
        while !c.eat('}') {
            let i = c.index()?;
            c.expect(':')?;
            pairs.push((i, c.string()?));
            if pairs.len() > MAX_CLASSES {
                return Err(format!("more than {MAX_CLASSES} names"));
            }
            if !c.eat(',') {
                c.expect('}')?;
                break;
            }
        }
        let mut names = vec![None; pairs.len()];
        for (i, name) in pairs {
            match names.get_mut(i) {
                Some(slot @ None) => *slot = Some(name),
                Some(Some(_)) => return Err(format!("class index {i} appears twice")),
                None => {
                    return Err(format!(
                        "class index {i} is out of range: indices must be 0 to n-1"
                    ))
                }
            }
        }
        // Every slot is filled: n distinct keys all below n.
        names.into_iter().flatten().collect()
    };
    if !c.at_end() {
        return Err(format!("unexpected {} after the names", c.next_desc()));
    }
    if names.is_empty() {
        return Err("no names".into());
    }
    Ok(names)
}

/// Parses the Ultralytics `imgsz` metadata property, `[640, 640]` (height, width) or `640`, into
/// a square input side in px. None when it is missing, malformed, zero or not square.
pub fn parse_imgsz(text: &str) -> Option<u32> {
    let t = text.trim();
    let inner = t
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .or_else(|| t.strip_prefix('(').and_then(|r| r.strip_suffix(')')))
        .unwrap_or(t);
    let sides: Vec<u32> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().ok())
        .collect::<Option<_>>()?;
    match sides[..] {
        [s] | [s, _] if s > 0 && sides.iter().all(|&x| x == s) => Some(s),
        _ => None,
    }
}

/// Where a label list came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelSource {
    /// The model file's `names` metadata property.
    Model,
    /// `detector.class_names` in the config.
    Config,
    /// The built-in COCO-80 list.
    Coco,
}

/// Picks the model's label list: the model's own `names` if present and parseable, else
/// `configured` (`detector.class_names`), else COCO-80 when `num_classes` is 80 or unknown.
///
/// `num_classes` is the class count the output shape implies (None for end-to-end models, whose
/// shape does not say). A list whose length differs from it is an error naming both numbers.
pub fn resolve(
    model_names: Option<&str>,
    configured: Option<&[String]>,
    num_classes: Option<usize>,
) -> Result<(Vec<&'static str>, LabelSource), String> {
    let from_model = match model_names.map(parse_names) {
        Some(Ok(names)) => Some(names),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "ignoring the model's `names` metadata");
            None
        }
        None => None,
    };
    let (names, source): (Vec<&'static str>, _) = match (from_model, configured) {
        (Some(n), _) => (n.iter().map(|s| intern(s)).collect(), LabelSource::Model),
        (None, Some(c)) => (c.iter().map(|s| intern(s)).collect(), LabelSource::Config),
        (None, None) => match num_classes {
            None | Some(80) => (COCO_CLASSES.to_vec(), LabelSource::Coco),
            Some(n) => {
                return Err(format!(
                    "the model has {n} classes and no `names` metadata: list its {n} labels in \
                     detector.class_names"
                ))
            }
        },
    };
    match num_classes {
        Some(n) if n != names.len() => Err(format!(
            "the model outputs {n} class scores but its label list ({}) has {} names",
            match source {
                LabelSource::Model => "the model's `names` metadata",
                LabelSource::Config => "detector.class_names",
                LabelSource::Coco => "COCO-80",
            },
            names.len()
        )),
        _ => Ok((names, source)),
    }
}

/// Looks up the index of each of `classes` in `labels`, in the given order. An unknown name is a
/// [`DetectError::ClassNotInModel`] that lists the model's labels.
pub fn wanted_ids(classes: &[String], labels: &[&'static str]) -> Result<Vec<u16>, DetectError> {
    classes
        .iter()
        .map(|n| {
            labels
                .iter()
                .position(|l| l == n)
                .and_then(|i| u16::try_from(i).ok())
                .ok_or_else(|| DetectError::ClassNotInModel {
                    class: n.clone(),
                    labels: labels.join(", "),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_ultralytics_names() {
        let n = parse_names("{0: 'person', 1: 'bicycle', 2: \"car\", 3: 'o\\'clock, ok'}").unwrap();
        assert_eq!(n, ["person", "bicycle", "car", "o'clock, ok"]);
        // Any key order, trailing comma, list form.
        assert_eq!(parse_names("{1: 'b', 0: 'a',}").unwrap(), ["a", "b"]);
        assert_eq!(parse_names(" ['a', \"b\"] ").unwrap(), ["a", "b"]);
        assert_eq!(
            parse_names("{0: '\\u00e9t\\x e9'}").unwrap_err(),
            "bad \\x or \\u escape"
        );
        assert_eq!(parse_names("{0: '\\u00e9t\\xe9'}").unwrap(), ["été"]);
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "{}",
            "[]",
            "{0: 'a', 0: 'b'}",
            "{0: 'a', 2: 'c'}",
            "{0: 'a'",
            "{0: a}",
            "{0: 'a'} x",
            "{-1: 'a'}",
            "{99999999999999999999999: 'a'}",
            "{0: 'unterminated}",
        ] {
            assert!(parse_names(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_imgsz() {
        assert_eq!(parse_imgsz("[640, 640]"), Some(640));
        assert_eq!(parse_imgsz("320"), Some(320));
        assert_eq!(parse_imgsz("(416,416)"), Some(416));
        for bad in ["[640, 480]", "[0, 0]", "", "[]", "abc", "[640, 640, 640x]"] {
            assert_eq!(parse_imgsz(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn interning_returns_one_pointer_per_name() {
        let a = intern(&String::from("forklift"));
        let b = intern(&String::from("forklift"));
        assert!(std::ptr::eq(a, b));
        assert_eq!(intern("car"), "car");
    }

    #[test]
    fn resolve_prefers_model_then_config_then_coco() {
        let cfg = vec!["x".to_string(), "y".to_string()];
        let (l, s) = resolve(Some("{0: 'a', 1: 'b'}"), Some(&cfg), Some(2)).unwrap();
        assert_eq!((l, s), (vec!["a", "b"], LabelSource::Model));
        let (l, s) = resolve(Some("garbage"), Some(&cfg), Some(2)).unwrap();
        assert_eq!((l, s), (vec!["x", "y"], LabelSource::Config));
        let (l, s) = resolve(None, None, Some(80)).unwrap();
        assert_eq!((l.len(), s), (80, LabelSource::Coco));
        let (l, _) = resolve(None, None, None).unwrap();
        assert_eq!(l[2], "car");
        let e = resolve(None, None, Some(3)).unwrap_err();
        assert!(
            e.contains("3 classes") && e.contains("detector.class_names"),
            "{e}"
        );
        let e = resolve(None, Some(&cfg), Some(3)).unwrap_err();
        assert!(e.contains("3 class scores") && e.contains("2 names"), "{e}");
    }

    #[test]
    fn unknown_wanted_class_lists_the_labels() {
        let labels = ["cat", "dog"];
        assert_eq!(wanted_ids(&["dog".into()], &labels).unwrap(), [1]);
        let e = wanted_ids(&["car".into()], &labels).unwrap_err();
        assert!(matches!(&e, DetectError::ClassNotInModel { class, .. } if class == "car"));
        assert!(e.to_string().contains("cat, dog"), "{e}");
    }

    proptest! {
        #[test]
        fn parse_names_never_panics(s in ".{0,64}") {
            let _ = parse_names(&s);
            let _ = parse_imgsz(&s);
        }

        #[test]
        fn parse_names_never_panics_on_near_dicts(
            parts in proptest::collection::vec(
                prop_oneof![Just("{"), Just("}"), Just("["), Just("]"), Just(":"), Just(","),
                            Just("'"), Just("\""), Just("\\"), Just("0"), Just("12"), Just(" "),
                            Just("a"), Just("\\x"), Just("\\u12")], 0..24)) {
            let _ = parse_names(&parts.concat());
        }

        #[test]
        fn round_trips_python_reprs(names in proptest::collection::vec("[a-z '\"\\\\,:{}]{1,12}", 1..20)) {
            // Python's repr of a str: single quotes unless it holds ' and no ".
            let repr = |s: &str| {
                if s.contains('\'') && !s.contains('"') {
                    format!("\"{}\"", s.replace('\\', "\\\\"))
                } else {
                    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
                }
            };
            let dict = names.iter().enumerate()
                .map(|(i, n)| format!("{i}: {}", repr(n)))
                .collect::<Vec<_>>()
                .join(", ");
            prop_assert_eq!(parse_names(&format!("{{{dict}}}")).unwrap(), names);
        }
    }
}
