//! `profile.pb.gz`: the sampled stacks as a pprof profile (google/pprof's
//! profile.proto, gzipped), for `go tool pprof` and the continuous-
//! profiling servers that take pprof (Parca, Pyroscope). Samples are CPU
//! time; kernel frames keep their addresses in a `[kernel.kallsyms]`
//! mapping that is marked symbolized. The frames are those of
//! `stacks.folded`, so both give the same functions and totals.

use std::collections::HashMap;
use std::io::Write as _;

use anyhow::{Context as _, Result};
use flate2::Compression;
use flate2::write::GzEncoder;
use prost::Message;

use super::{Artifact, Format};
use crate::model::{Profile, Report, SampledProcess, SampledStack, UnknownUser, profile::USER_STACK_LOST_FRAME};

pub const FILE_NAME: &str = "profile.pb.gz";

/// The messages of profile.proto this writer fills, with their field numbers.
mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub mapping: Vec<Mapping>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub period: i64,
        #[prost(int64, repeated, tag = "13")]
        pub comment: Vec<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        /// Leaf first.
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        #[prost(int64, tag = "2")]
        pub str: i64,
        #[prost(int64, tag = "3")]
        pub num: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Mapping {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub memory_start: u64,
        #[prost(uint64, tag = "3")]
        pub memory_limit: u64,
        #[prost(int64, tag = "5")]
        pub filename: i64,
        #[prost(bool, tag = "7")]
        pub has_functions: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub mapping_id: u64,
        #[prost(uint64, tag = "3")]
        pub address: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
    }
}

/// The kernel's mapping: every kernel address, named as perf names it.
const KERNEL_MAPPING_ID: u64 = 1;

/// Interns strings, functions and locations as profile.proto wants them:
/// by index (strings, 0 is "") and by id (functions, locations, from 1).
#[derive(Default)]
struct Builder {
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    functions: Vec<proto::Function>,
    function_ids: HashMap<String, u64>,
    locations: Vec<proto::Location>,
    location_ids: HashMap<(u64, String), u64>,
}

impl Builder {
    fn new() -> Self {
        let mut builder = Self::default();
        builder.string("");
        builder
    }

    fn string(&mut self, text: &str) -> i64 {
        if let Some(&id) = self.string_ids.get(text) {
            return id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(text.to_owned());
        self.string_ids.insert(text.to_owned(), id);
        id
    }

    fn function(&mut self, name: &str) -> u64 {
        if let Some(&id) = self.function_ids.get(name) {
            return id;
        }
        let id = self.functions.len() as u64 + 1;
        let name_index = self.string(name);
        self.functions.push(proto::Function {
            id,
            name: name_index,
            system_name: name_index,
        });
        self.function_ids.insert(name.to_owned(), id);
        id
    }

    /// A frame: its address (0 for frames that stand for no code, such as
    /// the process root) and its function.
    fn location(&mut self, address: u64, name: &str, mapping_id: u64) -> u64 {
        let key = (address, name.to_owned());
        if let Some(&id) = self.location_ids.get(&key) {
            return id;
        }
        let id = self.locations.len() as u64 + 1;
        let function_id = self.function(name);
        self.locations.push(proto::Location {
            id,
            mapping_id,
            address,
            line: vec![proto::Line { function_id }],
        });
        self.location_ids.insert(key, id);
        id
    }
}

/// One stack's locations, root first, as `stacks.folded` has its frames.
fn stack_locations(builder: &mut Builder, profile: &Profile, stack: &SampledStack) -> Vec<u64> {
    let mut ids = Vec::new();
    if profile.process_roots
        && let Some(process) = &stack.process
    {
        ids.push(builder.location(0, &SampledProcess::frame(process), 0));
    }
    if stack.unknown_user == Some(UnknownUser::StackLost) {
        ids.push(builder.location(0, USER_STACK_LOST_FRAME, 0));
    }
    let address = |addresses: &[u64], index: usize| addresses.get(index).copied().unwrap_or(0);
    for (index, name) in stack.user.iter().enumerate() {
        ids.push(builder.location(address(&stack.user_addresses, index), name, 0));
    }
    let kernel_addresses = stack.kernel_frame_addresses();
    for (index, name) in stack.kernel_frames().iter().enumerate() {
        let mapping = if stack.kernel_addresses.is_empty() {
            0
        } else {
            KERNEL_MAPPING_ID
        };
        ids.push(builder.location(address(&kernel_addresses, index), name, mapping));
    }
    ids
}

/// Nanoseconds since the epoch of an RFC 3339 time (0 when unreadable).
fn epoch_nanos(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339(rfc3339)
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_nanos() as i64)
}

/// The profile of `report`'s samples, encoded (not yet compressed).
pub fn encode(report: &Report, profile: &Profile) -> Vec<u8> {
    let mut builder = Builder::new();
    let period = 1_000_000_000 / profile.hz.max(1) as i64;
    let sample_type = vec![
        proto::ValueType {
            r#type: builder.string("samples"),
            unit: builder.string("count"),
        },
        proto::ValueType {
            r#type: builder.string("cpu"),
            unit: builder.string("nanoseconds"),
        },
    ];
    let period_type = Some(proto::ValueType {
        r#type: builder.string("cpu"),
        unit: builder.string("nanoseconds"),
    });
    let (pid_key, comm_key) = (builder.string("pid"), builder.string("comm"));
    let kernel_name = builder.string("[kernel.kallsyms]");
    let mut samples = Vec::new();
    for stack in &profile.stacks {
        let mut location_id = stack_locations(&mut builder, profile, stack);
        if location_id.is_empty() {
            location_id.push(builder.location(0, "[no stack]", 0));
        }
        location_id.reverse();
        let label = match &stack.process {
            Some(process) => vec![
                proto::Label {
                    key: pid_key,
                    str: 0,
                    num: i64::from(process.pid),
                },
                proto::Label {
                    key: comm_key,
                    str: builder.string(&process.comm),
                    num: 0,
                },
            ],
            None => Vec::new(),
        };
        samples.push(proto::Sample {
            location_id,
            value: vec![stack.count as i64, stack.count as i64 * period],
            label,
        });
    }
    let kernel_addresses = profile
        .stacks
        .iter()
        .flat_map(|stack| stack.kernel_addresses.iter().copied());
    let mapping = match (kernel_addresses.clone().min(), kernel_addresses.max()) {
        (Some(start), Some(end)) => vec![proto::Mapping {
            id: KERNEL_MAPPING_ID,
            memory_start: start,
            memory_limit: end + 1,
            filename: kernel_name,
            // Already symbolized: pprof must not look for the binary.
            has_functions: true,
        }],
        _ => Vec::new(),
    };
    let comment = vec![builder.string(&format!(
        "mprotect-trace {} on {} {}",
        report.tool_version, report.kernel_release, report.arch
    ))];
    proto::Profile {
        sample_type,
        sample: samples,
        mapping,
        location: builder.locations,
        function: builder.functions,
        string_table: builder.strings,
        time_nanos: epoch_nanos(&report.start_time),
        duration_nanos: (report.duration_s * 1e9) as i64,
        period_type,
        period,
        comment,
    }
    .encode_to_vec()
}

pub struct Pprof;

impl Format for Pprof {
    fn render(&self, report: &Report, _earlier: &[Artifact]) -> Result<Vec<Artifact>> {
        let Some(profile) = report.sampled_stacks() else {
            return Ok(Vec::new());
        };
        // gzip's header time stays 0: the same run gives the same bytes.
        let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
        gzip.write_all(&encode(report, profile))
            .context("compressing profile.pb.gz")?;
        Ok(vec![Artifact::new(
            FILE_NAME,
            gzip.finish().context("compressing profile.pb.gz")?,
        )])
    }
}
