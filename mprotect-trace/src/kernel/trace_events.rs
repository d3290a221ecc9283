//! Tracepoints as tracefs describes them: an event's type id (the
//! `common_type` every record starts with) and its fields from `format`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use super::mounts::{self, Mount};

/// `category:name`, optionally with one integer field to distribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracepointSpec {
    pub category: String,
    pub name: String,
    pub field: Option<String>,
}

impl TracepointSpec {
    /// True when a `--probe` value names a tracepoint rather than a function.
    pub fn is_tracepoint(probe: &str) -> bool {
        probe.contains(':')
    }

    /// `--probe category:name`.
    pub fn parse_event(text: &str) -> Result<Self> {
        match text.split(':').collect::<Vec<_>>()[..] {
            [category, name] if !category.is_empty() && !name.is_empty() => Ok(Self {
                category: category.to_owned(),
                name: name.to_owned(),
                field: None,
            }),
            _ => bail!("--probe {text}: a tracepoint is category:name, e.g. tlb:tlb_flush"),
        }
    }

    /// `--probe-field category:name:field`.
    pub fn parse_field(text: &str) -> Result<Self> {
        match text.split(':').collect::<Vec<_>>()[..] {
            [category, name, field] if !category.is_empty() && !name.is_empty() && !field.is_empty() => Ok(Self {
                category: category.to_owned(),
                name: name.to_owned(),
                field: Some(field.to_owned()),
            }),
            _ => bail!("--probe-field {text}: give category:name:field, e.g. tlb:tlb_flush:reason"),
        }
    }

    /// `category:name`, as tracefs and perf spell it.
    pub fn event(&self) -> String {
        format!("{}:{}", self.category, self.name)
    }
}

/// Merges `--probe` tracepoints and `--probe-field`s: one entry per
/// event, carrying its field (one field an event).
pub fn merge_specs(events: Vec<TracepointSpec>, fields: Vec<TracepointSpec>) -> Result<Vec<TracepointSpec>> {
    let mut merged: Vec<TracepointSpec> = Vec::new();
    for spec in events.into_iter().chain(fields) {
        match merged.iter_mut().find(|known| known.event() == spec.event()) {
            Some(known) => match (&known.field, spec.field) {
                (Some(a), Some(b)) if *a != b => bail!(
                    "--probe-field {}: one field an event ({} is already distributed); run again for the other",
                    spec_field(&known.event(), &b),
                    spec_field(&known.event(), a)
                ),
                (_, Some(b)) => known.field = Some(b),
                (_, None) => {}
            },
            None => merged.push(spec),
        }
    }
    Ok(merged)
}

fn spec_field(event: &str, field: &str) -> String {
    format!("{event}:{field}")
}

/// An integer field of an event record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventField {
    pub name: String,
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
    /// Names of values, from the event's `__print_symbolic` (may be empty).
    pub symbols: Vec<(i64, String)>,
}

/// One tracepoint, found in tracefs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TraceEvent {
    #[serde(serialize_with = "event_name")]
    pub spec: TracepointSpec,
    /// Its id in tracefs.
    pub id: u32,
    #[serde(skip)]
    pub field: Option<EventField>,
    /// Every integer field `--probe-field` can distribute.
    pub integer_fields: Vec<String>,
}

fn event_name<S: serde::Serializer>(spec: &TracepointSpec, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(&spec.event())
}

fn events_dir() -> Result<PathBuf> {
    let tracefs = mounts::ensure(Mount::Tracefs)?;
    Ok(Path::new(tracefs.path).join("events"))
}

/// Finds each tracepoint and its field, or says in one line what exists.
pub fn resolve(specs: &[TracepointSpec]) -> Result<Vec<TraceEvent>> {
    // Nothing asked for: tracefs need not even be readable.
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let events = events_dir()?;
    specs.iter().map(|spec| resolve_one(&events, spec)).collect()
}

fn resolve_one(events: &Path, spec: &TracepointSpec) -> Result<TraceEvent> {
    let dir = events.join(&spec.category).join(&spec.name);
    let id_text = match std::fs::read_to_string(dir.join("id")) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
            "no tracepoint {} in {}: did you mean {}?",
            spec.event(),
            events.display(),
            closest_events(events, &spec.event()).join(", ")
        ),
        Err(err) => return Err(err).with_context(|| format!("reading {}", dir.join("id").display())),
    };
    let id = id_text
        .trim()
        .parse()
        .with_context(|| format!("{} is not a number", dir.join("id").display()))?;
    let format = std::fs::read_to_string(dir.join("format"))
        .with_context(|| format!("reading {}", dir.join("format").display()))?;
    let field = match &spec.field {
        None => None,
        Some(name) => Some(
            integer_field(&format, name)
                .map_err(|why| anyhow::anyhow!("--probe-field {}:{name}: {why}", spec.event()))?,
        ),
    };
    Ok(TraceEvent {
        spec: spec.clone(),
        id,
        field,
        integer_fields: integer_fields(&format),
    })
}

/// Every `category:name` under `events`, the three nearest to `wanted`.
fn closest_events(events: &Path, wanted: &str) -> Vec<String> {
    let mut names = Vec::new();
    for category in std::fs::read_dir(events).into_iter().flatten().flatten() {
        if !category.path().is_dir() {
            continue;
        }
        for event in std::fs::read_dir(category.path()).into_iter().flatten().flatten() {
            if event.path().join("id").exists() {
                names.push(format!(
                    "{}:{}",
                    category.file_name().to_string_lossy(),
                    event.file_name().to_string_lossy()
                ));
            }
        }
    }
    names.sort_by(|a, b| {
        strsim::levenshtein(a, wanted)
            .cmp(&strsim::levenshtein(b, wanted))
            .then_with(|| a.cmp(b))
    });
    names.truncate(3);
    names
}

/// One `field:TYPE NAME; offset:N; size:N; signed:N;` line.
struct FormatLine<'a> {
    declaration: &'a str,
    offset: u32,
    size: u32,
    signed: bool,
}

impl<'a> FormatLine<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let mut declaration = None;
        let (mut offset, mut size, mut signed) = (None, None, None);
        for part in line.trim().split(';').map(str::trim) {
            if let Some(rest) = part.strip_prefix("field:") {
                declaration = Some(rest.trim());
            } else if let Some(rest) = part.strip_prefix("offset:") {
                offset = rest.parse().ok();
            } else if let Some(rest) = part.strip_prefix("size:") {
                size = rest.parse().ok();
            } else if let Some(rest) = part.strip_prefix("signed:") {
                signed = rest.parse::<u32>().ok().map(|s| s != 0);
            }
        }
        Some(Self {
            declaration: declaration?,
            offset: offset?,
            size: size?,
            signed: signed?,
        })
    }

    /// The declared name: the last word, without an array suffix.
    fn name(&self) -> &'a str {
        let last = self.declaration.rsplit(' ').next().unwrap_or(self.declaration);
        last.split('[').next().unwrap_or(last)
    }

    /// A plain integer: not an array, not a `__data_loc` string, 1-8 bytes.
    fn is_integer(&self) -> bool {
        !self.declaration.contains('[')
            && !self.declaration.starts_with("__data_loc")
            && matches!(self.size, 1 | 2 | 4 | 8)
    }
}

/// The event's own integer fields (not the `common_*` every event has,
/// which are not worth distributing).
pub fn integer_fields(format: &str) -> Vec<String> {
    format
        .lines()
        .filter_map(FormatLine::parse)
        .filter(|f| !f.name().starts_with("common_") && f.is_integer())
        .map(|f| f.name().to_owned())
        .collect()
}

/// The field `name` of a tracefs `format` text, when it is an integer.
pub fn integer_field(format: &str, name: &str) -> std::result::Result<EventField, String> {
    let fields: Vec<FormatLine> = format.lines().filter_map(FormatLine::parse).collect();
    let own = || fields.iter().filter(|f| !f.name().starts_with("common_"));
    let integers = || integer_fields(format).join(", ");
    match own().find(|f| f.name() == name) {
        Some(field) if field.is_integer() => Ok(EventField {
            name: name.to_owned(),
            offset: field.offset,
            size: field.size,
            signed: field.signed,
            symbols: print_symbolic(format, name),
        }),
        Some(field) => Err(format!(
            "'{}' is not an integer field; its integer fields: {}",
            field.declaration,
            integers()
        )),
        None => Err(format!("no field {name}; its integer fields: {}", integers())),
    }
}

/// The value names `print fmt` gives `field` with
/// `__print_symbolic(REC->field, { 0, "name" }, ...)`.
fn print_symbolic(format: &str, field: &str) -> Vec<(i64, String)> {
    let Some(start) = format.find(&format!("__print_symbolic(REC->{field},")) else {
        return Vec::new();
    };
    let mut symbols = Vec::new();
    let mut rest = &format[start..];
    // Each pair is `{ VALUE, "NAME" }`; the list ends at the first `)`
    // outside a name.
    while let Some(open) = rest.find(['{', ')']) {
        if rest.as_bytes()[open] == b')' {
            break;
        }
        let Some(close) = rest[open..].find('}') else { break };
        let pair = &rest[open + 1..open + close];
        if let Some((value, name)) = pair.split_once(',')
            && let Ok(value) = parse_c_integer(value.trim())
        {
            symbols.push((value, name.trim().trim_matches('"').to_owned()));
        }
        rest = &rest[open + close + 1..];
    }
    symbols
}

fn parse_c_integer(text: &str) -> std::result::Result<i64, std::num::ParseIntError> {
    match text.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16),
        None => text.parse(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tlb:tlb_flush's format on 6.18 (x86_64), with a field of two other
    /// kinds added (an array, a `__data_loc` string).
    const TLB_FLUSH: &str = "name: tlb_flush
ID: 188
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int reason;\toffset:8;\tsize:4;\tsigned:1;
\tfield:unsigned long pages;\toffset:16;\tsize:8;\tsigned:0;
\tfield:char comm[16];\toffset:24;\tsize:16;\tsigned:0;
\tfield:__data_loc char[] name;\toffset:40;\tsize:4;\tsigned:0;

print fmt: \"pages:%ld reason:%s (%d)\", REC->pages, __print_symbolic(REC->reason, { 0, \"flush on task switch\" }, { 1, \"remote shootdown\" }, { 2, \"local shootdown\" }, { 3, \"local MM shootdown\" }, { 4, \"remote IPI send\" }, { 5, \"remote wrong CPU\" }), REC->reason
";

    #[test]
    fn finds_integer_fields_by_name() {
        assert_eq!(
            integer_field(TLB_FLUSH, "reason"),
            Ok(EventField {
                name: "reason".into(),
                offset: 8,
                size: 4,
                signed: true,
                symbols: [
                    "flush on task switch",
                    "remote shootdown",
                    "local shootdown",
                    "local MM shootdown",
                    "remote IPI send",
                    "remote wrong CPU"
                ]
                .iter()
                .enumerate()
                .map(|(value, name)| (value as i64, name.to_string()))
                .collect(),
            })
        );
        assert_eq!(
            integer_field(TLB_FLUSH, "pages").map(|f| (f.offset, f.size, f.signed)),
            Ok((16, 8, false))
        );
    }

    #[test]
    fn refuses_what_is_not_an_integer_naming_what_is() {
        assert_eq!(
            integer_field(TLB_FLUSH, "comm"),
            Err("'char comm[16]' is not an integer field; its integer fields: reason, pages".into())
        );
        assert_eq!(
            integer_field(TLB_FLUSH, "name"),
            Err("'__data_loc char[] name' is not an integer field; its integer fields: reason, pages".into())
        );
        assert_eq!(
            integer_field(TLB_FLUSH, "reasn"),
            Err("no field reasn; its integer fields: reason, pages".into())
        );
    }

    #[test]
    fn parses_specs_and_merges_fields_into_their_event() {
        assert!(TracepointSpec::is_tracepoint("tlb:tlb_flush"));
        assert!(!TracepointSpec::is_tracepoint("change_pte_range"));
        assert_eq!(
            TracepointSpec::parse_event("tlb:").unwrap_err().to_string(),
            "--probe tlb:: a tracepoint is category:name, e.g. tlb:tlb_flush"
        );
        assert_eq!(
            TracepointSpec::parse_field("tlb:tlb_flush").unwrap_err().to_string(),
            "--probe-field tlb:tlb_flush: give category:name:field, e.g. tlb:tlb_flush:reason"
        );
        let merged = merge_specs(
            vec![TracepointSpec::parse_event("tlb:tlb_flush").unwrap()],
            vec![TracepointSpec::parse_field("tlb:tlb_flush:reason").unwrap()],
        )
        .unwrap();
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].field.as_deref(), Some("reason"));
        let two_fields = merge_specs(
            vec![],
            vec![
                TracepointSpec::parse_field("tlb:tlb_flush:reason").unwrap(),
                TracepointSpec::parse_field("tlb:tlb_flush:pages").unwrap(),
            ],
        );
        assert_eq!(
            two_fields.unwrap_err().to_string(),
            "--probe-field tlb:tlb_flush:pages: one field an event (tlb:tlb_flush:reason is already distributed); run again for the other"
        );
    }
}
