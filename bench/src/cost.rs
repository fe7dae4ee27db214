//! What a million images cost, path by path: the Standard pipeline, the Express pipeline, and the
//! backfill (a Distributed Map whose Express children run the Express pipeline), beside the seed's single
//! Node.js Lambda. Inputs: measured stage compute (one thread), the memory the CDK stack configures,
//! the state machine definitions (states entered, history events), the S3 requests of the integrity
//! contract (docs/CONTRACTS.md), and list prices with their date.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// List prices, us-east-1, from the AWS pricing pages (Lambda's from FACTS.md).
#[derive(Debug, Clone, Copy)]
pub struct Prices {
    pub lambda_arm64_gb_second: f64,
    pub lambda_x86_64_gb_second: f64,
    pub lambda_request: f64,
    pub sfn_standard_transition: f64,
    pub sfn_express_request: f64,
    /// The first tier ($0.06 per GB-hour, the first 1,000 GB-hours a month); a million images stays in it.
    pub sfn_express_gb_second: f64,
    /// PUT, COPY, POST, LIST.
    pub s3_put: f64,
    /// GET, HEAD.
    pub s3_get: f64,
    /// DELETE is free.
    pub s3_delete: f64,
    pub logs_ingested_gb: f64,
    /// Billed on the compressed size; charged here on the ingested size, an upper bound.
    pub logs_stored_gb_month: f64,
    /// DetectFaces, first million images a month (FACTS.md: *unverified*).
    pub rekognition_image: f64,
}

pub const PRICES: Prices = Prices {
    lambda_arm64_gb_second: 0.000_013_333_4,
    lambda_x86_64_gb_second: 0.000_016_666_7,
    lambda_request: 0.20 / 1e6,
    sfn_standard_transition: 0.025 / 1000.0,
    sfn_express_request: 1.00 / 1e6,
    sfn_express_gb_second: 0.06 / 3600.0,
    s3_put: 0.005 / 1000.0,
    s3_get: 0.0004 / 1000.0,
    s3_delete: 0.0,
    logs_ingested_gb: 0.50,
    logs_stored_gb_month: 0.03,
    rekognition_image: 0.001,
};
/// When the prices above were read (stored copies of the pricing pages; not re-checked live from here).
pub const PRICES_AS_OF: &str = "2026-11-28";

/// Kept for the benchmark's report (seed and old model): the same prices.
pub const X86_64_GB_SECOND: f64 = PRICES.lambda_x86_64_gb_second;

/// Assumptions for what this machine cannot measure: S3 seen from a Lambda in the same region.
pub const S3_ROUND_TRIP_MS: f64 = 30.0;
pub const S3_MB_PER_S: f64 = 90.0;
/// Share of invocations that start cold under steady traffic.
pub const COLD_FRACTION: f64 = 0.01;
/// Lambda gives one vCPU at 1,769 MB and CPU in proportion to memory below it (Lambda developer guide).
pub const FULL_VCPU_MB: f64 = 1769.0;
/// Step Functions' own time per state entered (scheduling, Lambda invoke), assumed.
pub const SFN_STATE_OVERHEAD_MS: f64 = 25.0;
/// CloudWatch Logs counts 26 bytes of overhead per log event.
pub const LOG_EVENT_OVERHEAD_BYTES: f64 = 26.0;
/// What a Step Functions log record adds to the history event it carries: the execution ARN, the redrive
/// count and snake_case field names (the local history's own id, type and timestamp are counted there).
pub const LOG_RECORD_ENVELOPE_BYTES: f64 = 130.0;
/// Objects per Distributed Map child (statemachine/backfill.asl.json ItemBatcher).
pub const BACKFILL_BATCH: f64 = 10.0;

pub fn s3_transfer_ms(bytes: f64) -> f64 {
    bytes / 1e6 / S3_MB_PER_S * 1000.0
}

pub fn s3_get_ms(bytes: f64) -> f64 {
    S3_ROUND_TRIP_MS + s3_transfer_ms(bytes)
}

/// Memory of a stage holding `pixels` at `bytes_per_pixel`: cdk/lib/memory.ts `memoryMiB`, the one formula.
pub fn memory_mib(pixels: f64, bytes_per_pixel: f64) -> u32 {
    let needed = pixels * bytes_per_pixel / (1024.0 * 1024.0) + 128.0;
    let rounded = (needed / 64.0).ceil() as u32 * 64;
    rounded.clamp(128, 10_240)
}

/// validate's memory: it decodes the whole upload at 16 B/px (cdk/lib/memory.ts `decodingMemoryMiB`).
pub fn decode_memory_mib(max_pixels: u64) -> u32 {
    memory_mib(max_pixels as f64, 16.0)
}

/// detect-faces' and render-variant's memory: the working copy at 8 B/px, bounded by 4 × what the largest
/// variant (or the 1920 px face preview) needs, never above the upload (cdk/lib/memory.ts
/// `workingCopyMemoryMiB`).
pub fn working_copy_memory_mib(
    max_pixels: u64,
    largest_variant_pixels: u64,
    detects_faces: bool,
) -> u32 {
    let preview = if detects_faces { 1920 * 1920 } else { 0 };
    let pixels = (largest_variant_pixels.max(preview) * 4).min(max_pixels);
    memory_mib(pixels as f64, 8.0)
}

/// record-result's memory (cdk/lib/ferrotype-stack.ts RECORD_RESULT_MEMORY_MIB).
pub const RECORD_RESULT_MEMORY_MIB: u32 = 256;

/// SMALL_STAGE_MEMORY_MIB from the CDK stack's source (the seed-era model: validate and record-result).
pub fn small_stage_memory_mib(stack_source: &str) -> Option<u32> {
    let line = stack_source.lines().find(|l| {
        l.contains("SMALL_STAGE_MEMORY_MIB =") || l.contains("RECORD_RESULT_MEMORY_MIB =")
    })?;
    line.split('=')
        .nth(1)?
        .trim()
        .trim_end_matches(';')
        .trim()
        .parse()
        .ok()
}

/// The states one execution enters, taking every Choice's Default and running each Map's processor once
/// per item; calls `visit` with each state and how many times it is entered.
fn walk_path(asl: &Value, map_items: usize, visit: &mut dyn FnMut(&Value, usize)) -> Result<()> {
    fn walk(
        states: &Value,
        start: &str,
        items: usize,
        depth: usize,
        times: usize,
        visit: &mut dyn FnMut(&Value, usize),
    ) -> Result<()> {
        let mut current = start.to_string();
        for _ in 0..1000 {
            let state = states
                .get(&current)
                .with_context(|| format!("no state {current:?}"))?;
            visit(state, times);
            let kind = state["Type"].as_str().unwrap_or_default();
            if kind == "Map" {
                let processor = state
                    .get("ItemProcessor")
                    .or_else(|| state.get("Iterator"))
                    .context("Map without processor")?;
                let start = processor["StartAt"]
                    .as_str()
                    .context("Map processor without StartAt")?;
                walk(
                    &processor["States"],
                    start,
                    items,
                    depth + 1,
                    times * items,
                    visit,
                )?;
            }
            let next = if kind == "Choice" {
                state["Default"].as_str()
            } else {
                state["Next"].as_str()
            };
            match next {
                Some(n) if !matches!(kind, "Succeed" | "Fail") => current = n.to_string(),
                _ => return Ok(()),
            }
        }
        anyhow::bail!("the state machine loops (depth {depth})")
    }
    let start = asl["StartAt"].as_str().context("ASL without StartAt")?;
    walk(&asl["States"], start, map_items, 0, 1, visit)
}

/// Whether an upload takes a Choice's first branch: never the one testing the event's detail-type (the
/// deletion route); the others (FacesWanted) when faces are detected.
fn upload_takes_first_branch(choice: &Value, faces: bool) -> bool {
    !choice["Choices"][0].to_string().contains("detail-type") && faces
}

/// States entered by one successful execution of a new upload: Step Functions Standard bills a transition
/// for each.
pub fn transitions(asl: &Value, map_items: usize, faces: bool) -> Result<usize> {
    let mut count = 0;
    walk_upload_path(asl, map_items, faces, &mut |_, times| count += times)?;
    Ok(count)
}

/// Events in the history of one successful execution of a new upload, as Step Functions logs them:
/// ExecutionStarted and ExecutionSucceeded; a state's Entered and Exited; a Lambda Task's Scheduled,
/// Started and Succeeded between them; a Map's Started and Succeeded, and each iteration's Started and
/// Succeeded.
pub fn history_events(asl: &Value, map_items: usize, faces: bool) -> Result<usize> {
    let mut count = 2;
    walk_upload_path(asl, map_items, faces, &mut |state, times| {
        let per_state = match state["Type"].as_str().unwrap_or_default() {
            "Task" => 5,
            "Map" => 4 + 2 * map_items,
            "Succeed" | "Fail" => 1,
            _ => 2,
        };
        count += per_state * times;
    })?;
    Ok(count)
}

fn walk_upload_path(
    asl: &Value,
    map_items: usize,
    faces: bool,
    visit: &mut dyn FnMut(&Value, usize),
) -> Result<()> {
    // Each Choice is resolved for an upload first (its Default made the branch the upload takes), then
    // the path is walked along the Defaults.
    fn resolve(states: &mut Value, faces: bool) {
        if let Some(map) = states.as_object_mut() {
            for state in map.values_mut() {
                if state["Type"] == "Choice" && upload_takes_first_branch(state, faces) {
                    state["Default"] = state["Choices"][0]["Next"].clone();
                }
                if let Some(processor) = state.get_mut("ItemProcessor") {
                    resolve(&mut processor["States"], faces);
                }
            }
        }
    }
    let mut resolved = asl.clone();
    resolve(&mut resolved["States"], faces);
    walk_path(&resolved, map_items, visit)
}

pub fn read_asl(path: &Path) -> Result<Value> {
    serde_json::from_slice(
        &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))
}

/// One Lambda stage: memory, invocations per image, compute (one vCPU) and waiting on S3.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub memory_mib: u32,
    pub invocations: f64,
    /// Compute at one full vCPU; slower below 1,769 MB, in proportion.
    pub cpu_ms: f64,
    /// Waiting on S3: not sped up by memory.
    pub io_ms: f64,
    pub cold_start_ms: f64,
    pub gb_second_price: f64,
    /// How the figures were obtained.
    pub basis: String,
}

impl Stage {
    /// Duration of one invocation at its memory.
    pub fn duration_ms(&self) -> f64 {
        self.cpu_ms * (FULL_VCPU_MB / f64::from(self.memory_mib)).max(1.0) + self.io_ms
    }
    /// GB-seconds per invocation, billed by the started millisecond, cold starts amortised.
    pub fn gb_seconds(&self) -> f64 {
        let billed_ms = self.duration_ms().ceil() + COLD_FRACTION * self.cold_start_ms.ceil();
        f64::from(self.memory_mib) / 1024.0 * billed_ms / 1000.0
    }
    pub fn cost_per_image(&self) -> f64 {
        self.invocations * (self.gb_seconds() * self.gb_second_price + PRICES.lambda_request)
    }
}

/// What one upload costs to process, measured on this machine (one thread) and from the definition.
#[derive(Debug, Clone)]
pub struct Workload {
    pub source_bytes: f64,
    pub working_copy_bytes: f64,
    /// validate: header probe, whole decode at the working copy's scale, working copy encoding.
    pub validate_cpu_ms: f64,
    /// detect-faces: preview from the working copy and the built-in detector; 0 with smart crop off.
    pub faces_cpu_ms: f64,
    /// One entry per variant: render from the working copy (ms) and output bytes.
    pub variants: Vec<(String, f64, f64)>,
    pub record_cpu_ms: f64,
    pub cold_start_ms: f64,
    /// Mean bytes of one history event as logged with execution data (input and output included).
    pub log_event_bytes: f64,
    /// Where the figures come from.
    pub basis: String,
}

#[derive(Debug, Clone, Copy)]
pub struct Memories {
    pub validate: u32,
    pub faces: u32,
    pub render: u32,
    pub record: u32,
}

/// S3 requests per upload under the integrity contract (docs/CONTRACTS.md, "Stage inputs and outputs").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct S3Requests {
    pub puts: f64,
    pub gets: f64,
    pub deletes: f64,
}

/// validate: HEAD (is it current?), a ranged GET of the header, a GET of the object, PUT of the working
/// copy. detect-faces: GET of the working copy, HEAD. Each render: GET of the working copy, HEAD before
/// writing, PUT of the variant (If-None-Match). record-result: GET of the stored manifest, HEAD, PUT of
/// the manifest (If-Match), DELETE of the working copy. A replacement also deletes the previous version's
/// outputs (free).
pub fn s3_requests(variants: usize, faces: bool) -> S3Requests {
    let v = variants as f64;
    let faces_gets = if faces { 2.0 } else { 0.0 };
    S3Requests {
        puts: 1.0 + v + 1.0,
        gets: 3.0 + faces_gets + 2.0 * v + 2.0,
        deletes: 1.0,
    }
}

/// The pipeline's four stages for one upload.
pub fn pipeline_stages(work: &Workload, memories: &Memories) -> Vec<Stage> {
    let stage = |name: String, memory_mib, cpu_ms, io_ms, basis: &str| Stage {
        name,
        memory_mib,
        invocations: 1.0,
        cpu_ms,
        io_ms,
        cold_start_ms: work.cold_start_ms,
        gb_second_price: PRICES.lambda_arm64_gb_second,
        basis: basis.to_owned(),
    };
    let wc = work.working_copy_bytes;
    let mut stages = vec![stage(
        "validate".into(),
        memories.validate,
        work.validate_cpu_ms,
        4.0 * S3_ROUND_TRIP_MS + s3_transfer_ms(64.0 * 1024.0 + work.source_bytes + wc),
        "probe, decode, working copy encode measured; HEAD, 2 GETs, PUT",
    )];
    if work.faces_cpu_ms > 0.0 {
        stages.push(stage(
            "detect-faces (builtin)".into(),
            memories.faces,
            work.faces_cpu_ms,
            2.0 * S3_ROUND_TRIP_MS + s3_transfer_ms(wc),
            "preview + detector from the working copy measured; GET, HEAD",
        ));
    }
    for (name, render_ms, out_bytes) in &work.variants {
        stages.push(stage(
            format!("render-variant ({name})"),
            memories.render,
            *render_ms,
            3.0 * S3_ROUND_TRIP_MS + s3_transfer_ms(wc + out_bytes),
            "render from the working copy measured; GET, HEAD, PUT",
        ));
    }
    stages.push(stage(
        "record-result".into(),
        memories.record,
        work.record_cpu_ms,
        4.0 * S3_ROUND_TRIP_MS,
        "assumed compute; GET, HEAD, PUT, DELETE",
    ));
    stages
}

/// How long one Express execution runs: its stages in order (renders in parallel) plus Step Functions'
/// own time per state.
pub fn execution_ms(stages: &[Stage], states_entered: usize) -> f64 {
    let renders = stages
        .iter()
        .filter(|s| s.name.starts_with("render-variant"));
    let slowest_render = renders.map(Stage::duration_ms).fold(0.0, f64::max);
    let serial: f64 = stages
        .iter()
        .filter(|s| !s.name.starts_with("render-variant"))
        .map(Stage::duration_ms)
        .sum();
    serial + slowest_render + states_entered as f64 * SFN_STATE_OVERHEAD_MS
}

/// An Express execution's billed GB-seconds: duration rounded up to 100 ms, memory in 64 MB chunks (a
/// small definition and payloads keep it in the first chunk: 50 MB + definition + data × Map items).
pub fn express_gb_seconds(duration_ms: f64) -> f64 {
    let billed_ms = (duration_ms / 100.0).ceil() * 100.0;
    64.0 / 1024.0 * billed_ms / 1000.0
}

/// One line of a cost table.
#[derive(Debug, Clone)]
pub struct Line {
    pub item: String,
    pub per_image: String,
    pub dollars_per_million: f64,
    pub basis: String,
}

#[derive(Debug, Clone)]
pub struct PathCost {
    pub title: String,
    pub lines: Vec<Line>,
}

impl PathCost {
    pub fn per_million(&self) -> f64 {
        self.lines.iter().map(|l| l.dollars_per_million).sum()
    }
}

/// Which way the pipeline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelinePath {
    /// Standard workflow, logging errors only (the console keeps the history).
    Standard,
    /// Express workflow, logging everything with execution data (the console shows every execution).
    Express,
    /// Express workflow, logging errors only (CDK context `expressLogLevel=error`): failed executions
    /// stay visible, successful ones are not logged.
    ExpressErrorLogs,
    /// The backfill: Express pipeline (logging errors) started by Distributed Map children of ten objects.
    Backfill,
}

const MILLION: f64 = 1e6;

/// The cost of one path per million uploads.
pub fn path_cost(
    path: PipelinePath,
    pipeline_asl: &Value,
    work: &Workload,
    memories: &Memories,
) -> Result<PathCost> {
    let variants = work.variants.len();
    let faces = work.faces_cpu_ms > 0.0;
    let stages = pipeline_stages(work, memories);
    let states = transitions(pipeline_asl, variants, faces)?;
    let mut lines: Vec<Line> = stages
        .iter()
        .map(|s| Line {
            item: format!("Lambda {} ({} MiB)", s.name, s.memory_mib),
            per_image: format!("{:.0} ms", s.duration_ms()),
            dollars_per_million: s.cost_per_image() * MILLION,
            basis: s.basis.clone(),
        })
        .collect();
    let s3 = s3_requests(variants, faces);
    lines.push(Line {
        item: "S3 PUT (working copy, variants, manifest)".into(),
        per_image: format!("{}", s3.puts),
        dollars_per_million: s3.puts * PRICES.s3_put * MILLION,
        basis: "integrity contract".into(),
    });
    lines.push(Line {
        item: "S3 GET and HEAD".into(),
        per_image: format!("{}", s3.gets),
        dollars_per_million: s3.gets * PRICES.s3_get * MILLION,
        basis: "integrity contract".into(),
    });
    lines.push(Line {
        item: "S3 DELETE (the working copy)".into(),
        per_image: format!("{}", s3.deletes),
        dollars_per_million: s3.deletes * PRICES.s3_delete * MILLION,
        basis: format!("integrity contract; timings: {}", work.basis),
    });
    let duration = execution_ms(&stages, states);
    match path {
        PipelinePath::Standard => lines.push(Line {
            item: "Step Functions Standard transitions".into(),
            per_image: format!("{states}"),
            dollars_per_million: states as f64 * PRICES.sfn_standard_transition * MILLION,
            basis: "states entered, counted on pipeline.asl.json".into(),
        }),
        PipelinePath::Express | PipelinePath::ExpressErrorLogs | PipelinePath::Backfill => {
            lines.push(Line {
                item: "Step Functions Express requests".into(),
                per_image: "1".into(),
                dollars_per_million: PRICES.sfn_express_request * MILLION,
                basis: String::new(),
            });
            lines.push(Line {
                item: "Step Functions Express duration (64 MB)".into(),
                per_image: format!("{:.1} s", duration / 1000.0),
                dollars_per_million: express_gb_seconds(duration)
                    * PRICES.sfn_express_gb_second
                    * MILLION,
                basis: format!("stages + {SFN_STATE_OVERHEAD_MS} ms per state"),
            });
        }
    }
    if path == PipelinePath::Express {
        let events = history_events(pipeline_asl, variants, faces)?;
        let gb = events as f64
            * (work.log_event_bytes + LOG_RECORD_ENVELOPE_BYTES + LOG_EVENT_OVERHEAD_BYTES)
            / 1e9;
        lines.push(Line {
            item: "CloudWatch Logs, level ALL with execution data".into(),
            per_image: format!("{events} events, {:.1} KB", gb * 1e6),
            dollars_per_million: gb
                * (PRICES.logs_ingested_gb + PRICES.logs_stored_gb_month)
                * MILLION,
            basis: "ingestion + one month stored (30-day retention)".into(),
        });
    }
    if path == PipelinePath::Backfill {
        // A child runs its ten objects at once: about as long as one pipeline execution, plus its own states.
        let child_ms = duration + 8.0 * SFN_STATE_OVERHEAD_MS;
        lines.push(Line {
            item: "Distributed Map children (Express, ten objects each)".into(),
            per_image: "0.1".into(),
            dollars_per_million: (PRICES.sfn_express_request
                + express_gb_seconds(child_ms) * PRICES.sfn_express_gb_second)
                / BACKFILL_BATCH
                * MILLION,
            basis: "a request and the batch's duration, shared by ten".into(),
        });
        lines.push(Line {
            item: "Backfill parent (Standard): a transition per child".into(),
            per_image: "0.1".into(),
            dollars_per_million: PRICES.sfn_standard_transition / BACKFILL_BATCH * MILLION,
            basis: "assumed: each child started is a state transition (*unverified*)".into(),
        });
        lines.push(Line {
            item: "S3 LIST (the ItemReader, 1,000 keys a page)".into(),
            per_image: "0.001".into(),
            dollars_per_million: PRICES.s3_put / 1000.0 * MILLION,
            basis: String::new(),
        });
    }
    let title = match path {
        PipelinePath::Standard => "Standard workflow (logs errors only; history in the console)",
        PipelinePath::Express => "Express workflow (the default; logs ALL with execution data)",
        PipelinePath::ExpressErrorLogs => {
            "Express workflow logging errors only (`-c expressLogLevel=error`)"
        }
        PipelinePath::Backfill => {
            "Backfill (Distributed Map of Express children; Express pipeline logging errors)"
        }
    };
    Ok(PathCost {
        title: title.to_owned(),
        lines,
    })
}

/// The seed: one Node.js Lambda on x86_64 making two variants with sharp, one GET and two PUTs.
pub fn seed_cost(stage: &Stage) -> PathCost {
    PathCost {
        title: "The seed: one Node.js Lambda with sharp, 2 variants".into(),
        lines: vec![
            Line {
                item: format!("Lambda {} ({} MB, x86_64)", stage.name, stage.memory_mib),
                per_image: format!("{:.0} ms", stage.duration_ms()),
                dollars_per_million: stage.cost_per_image() * MILLION,
                basis: stage.basis.clone(),
            },
            Line {
                item: "S3 PUT (two variants)".into(),
                per_image: "2".into(),
                dollars_per_million: 2.0 * PRICES.s3_put * MILLION,
                basis: String::new(),
            },
            Line {
                item: "S3 GET".into(),
                per_image: "1".into(),
                dollars_per_million: PRICES.s3_get * MILLION,
                basis: String::new(),
            },
        ],
    }
}

/// The summary table (one row per path, beside the seed) and each path's detail.
pub fn markdown(paths: &[PathCost], seed: &PathCost) -> String {
    let mut md = String::new();
    let seed_total = seed.per_million();
    let _ = writeln!(md, "| path | $ per million images | × seed |");
    let _ = writeln!(md, "|---|---:|---:|");
    for path in paths.iter().chain(std::iter::once(seed)) {
        let total = path.per_million();
        let _ = writeln!(
            md,
            "| {} | {:.2} | {:.1} |",
            path.title,
            total,
            total / seed_total
        );
    }
    let _ = writeln!(md);
    for path in paths.iter().chain(std::iter::once(seed)) {
        let _ = writeln!(md, "**{}**\n", path.title);
        let _ = writeln!(md, "| item | per image | $ per M images | basis |");
        let _ = writeln!(md, "|---|---:|---:|---|");
        for line in &path.lines {
            let _ = writeln!(
                md,
                "| {} | {} | {:.2} | {} |",
                line.item, line.per_image, line.dollars_per_million, line.basis
            );
        }
        let _ = writeln!(md, "| **total** | | **{:.2}** | |\n", path.per_million());
    }
    let _ = writeln!(
        md,
        "With `smartCrop: \"rekognition\"` add DetectFaces: ${:.2} per M images (about $0.001 an image, \
         *unverified*) on every path.\n",
        PRICES.rekognition_image * MILLION
    );
    let _ = writeln!(
        md,
        "List prices, us-east-1, read {PRICES_AS_OF} (not re-checked live): Lambda arm64 ${}/GB-s, x86_64 ${}/GB-s, \
         $0.20 per M requests; Step Functions Standard $0.025 per 1,000 transitions, Express $1.00 per M requests \
         and $0.06 per GB-hour; S3 Standard PUT/COPY/POST/LIST $0.005 and GET/HEAD $0.0004 per 1,000, DELETE free; \
         CloudWatch Logs $0.50 per GB ingested and $0.03 per GB-month stored; S3 events to EventBridge's default \
         bus are free. Assumed, not measured: S3 from Lambda {S3_ROUND_TRIP_MS} ms per request plus {S3_MB_PER_S} MB/s; \
         {:.0} % of invocations cold; Step Functions {SFN_STATE_OVERHEAD_MS} ms per state; compute measured on this \
         machine's CPU (one thread), not Graviton, and slowed in proportion below 1,769 MB (Lambda's one vCPU).",
        PRICES.lambda_arm64_gb_second,
        PRICES.lambda_x86_64_gb_second,
        COLD_FRACTION * 100.0
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_asl() -> Value {
        read_asl(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../statemachine/pipeline.asl.json"))
            .unwrap()
    }

    #[test]
    fn memory_matches_the_cdk_examples() {
        // cdk/test/functions.test.ts: validate 1664 MiB for 100 MP; the shipped profile's working copy 256 MiB.
        assert_eq!(decode_memory_mib(100_000_000), 1664);
        assert_eq!(decode_memory_mib(1), 192);
        assert_eq!(decode_memory_mib(10_000_000_000), 10_240);
        assert_eq!(working_copy_memory_mib(100_000_000, 800 * 800, true), 256);
        assert_eq!(
            working_copy_memory_mib(100_000_000, 2000 * 1500, false),
            256
        );
        assert_eq!(working_copy_memory_mib(1_000_000, 4000 * 4000, false), 192);
    }

    #[test]
    fn small_stage_memory_is_read_from_the_stack_source() {
        assert_eq!(
            small_stage_memory_mib("const X = 1;\nconst SMALL_STAGE_MEMORY_MIB = 256;\n"),
            Some(256)
        );
        assert_eq!(
            small_stage_memory_mib("const RECORD_RESULT_MEMORY_MIB = 256;"),
            Some(256)
        );
        assert_eq!(small_stage_memory_mib("nothing here"), None);
    }

    #[test]
    fn transitions_and_events_follow_the_upload_route() {
        let asl: Value = serde_json::json!({
            "StartAt": "Route",
            "States": {
                "Route": { "Type": "Choice", "Choices": [{ "Variable": "$['detail-type']", "StringEquals": "Object Deleted", "Next": "RecordDeletion" }], "Default": "A" },
                "RecordDeletion": { "Type": "Task", "Next": "Gone" },
                "Gone": { "Type": "Succeed" },
                "A": { "Type": "Task", "Next": "C" },
                "C": { "Type": "Choice", "Choices": [{ "Next": "B" }], "Default": "P" },
                "B": { "Type": "Task", "Next": "M" },
                "P": { "Type": "Pass", "Next": "M" },
                "M": { "Type": "Map", "ItemProcessor": { "StartAt": "R", "States": {
                    "R": { "Type": "Task", "End": true } } }, "Next": "D" },
                "D": { "Type": "Succeed" }
            }
        });
        // Route, A, C, B, M, 3 × R, D
        assert_eq!(transitions(&asl, 3, true).unwrap(), 5 + 3 + 1);
        // Route, A, C, P, M, 3 × R, D
        assert_eq!(transitions(&asl, 3, false).unwrap(), 5 + 3 + 1);
        // 2 + Route 2 + A 5 + C 2 + B 5 + M (4 + 6) + 3 × R 5 + D 1
        assert_eq!(
            history_events(&asl, 3, true).unwrap(),
            2 + 2 + 5 + 2 + 5 + 10 + 15 + 1
        );
    }

    #[test]
    fn the_projects_state_machine_is_countable() {
        let asl = repo_asl();
        let with_faces = transitions(&asl, 3, true).unwrap();
        let without = transitions(&asl, 3, false).unwrap();
        assert!(
            with_faces >= 3 + 4,
            "at least validate, faces, map, record and three renders: {with_faces}"
        );
        assert_eq!(
            without, with_faces,
            "the centre focus Pass replaces the DetectFaces Task, one state for one"
        );
        assert!(
            history_events(&asl, 3, false).unwrap() < history_events(&asl, 3, true).unwrap(),
            "a Pass logs fewer events than a Lambda Task"
        );
        assert!(history_events(&asl, 3, true).unwrap() > 4 * with_faces);
    }

    #[test]
    fn below_a_full_vcpu_compute_slows_in_proportion_and_waiting_does_not() {
        let stage = |memory_mib| Stage {
            name: "x".into(),
            memory_mib,
            invocations: 1.0,
            cpu_ms: 100.0,
            io_ms: 50.0,
            cold_start_ms: 0.0,
            gb_second_price: 1.0,
            basis: String::new(),
        };
        assert!((stage(1769).duration_ms() - 150.0).abs() < 1e-9);
        assert!(
            (stage(3538).duration_ms() - 150.0).abs() < 1e-9,
            "one thread gains nothing above one vCPU"
        );
        assert!((stage(442).duration_ms() - (100.0 * 1769.0 / 442.0 + 50.0)).abs() < 1e-9);
        // Compute costs the same GB-s at any memory below a vCPU; waiting costs less with less memory.
        let compute_gbs = |m: u32| f64::from(m) / 1024.0 * 100.0 * (1769.0 / f64::from(m)) / 1000.0;
        assert!((compute_gbs(256) - compute_gbs(1024)).abs() < 1e-12);
        assert!(stage(256).gb_seconds() < stage(1024).gb_seconds());
    }

    #[test]
    fn express_bills_100_ms_steps_of_a_64_mb_chunk() {
        assert!((express_gb_seconds(101.0) - 0.0625 * 0.2).abs() < 1e-12);
        assert!((express_gb_seconds(3000.0) - 0.0625 * 3.0).abs() < 1e-12);
    }

    #[test]
    fn the_contract_puts_one_working_copy_each_variant_and_the_manifest() {
        assert_eq!(
            s3_requests(3, true),
            S3Requests {
                puts: 5.0,
                gets: 13.0,
                deletes: 1.0
            }
        );
        assert_eq!(s3_requests(2, false).puts, 4.0);
    }

    fn workload() -> Workload {
        Workload {
            source_bytes: 2e6,
            working_copy_bytes: 4e6,
            validate_cpu_ms: 80.0,
            faces_cpu_ms: 400.0,
            variants: vec![("a".into(), 20.0, 5e4), ("b".into(), 30.0, 1e5)],
            record_cpu_ms: 5.0,
            cold_start_ms: 10.0,
            log_event_bytes: 1000.0,
            basis: String::new(),
        }
    }

    const MEMORIES: Memories = Memories {
        validate: 1664,
        faces: 256,
        render: 256,
        record: 256,
    };

    #[test]
    fn each_path_carries_its_own_charges() {
        let asl = repo_asl();
        let standard = path_cost(PipelinePath::Standard, &asl, &workload(), &MEMORIES).unwrap();
        let express = path_cost(PipelinePath::Express, &asl, &workload(), &MEMORIES).unwrap();
        let backfill = path_cost(PipelinePath::Backfill, &asl, &workload(), &MEMORIES).unwrap();
        let quiet =
            path_cost(PipelinePath::ExpressErrorLogs, &asl, &workload(), &MEMORIES).unwrap();
        let has = |path: &PathCost, item: &str| path.lines.iter().any(|l| l.item.contains(item));
        assert!(
            has(&standard, "Standard transitions")
                && !has(&standard, "Express")
                && !has(&standard, "CloudWatch")
        );
        assert!(
            has(&express, "Express requests")
                && has(&express, "CloudWatch")
                && !has(&express, "transitions")
        );
        assert!(has(&backfill, "Distributed Map children") && !has(&backfill, "CloudWatch"));
        assert!(has(&quiet, "Express requests") && !has(&quiet, "CloudWatch"));
        let logs = express
            .lines
            .iter()
            .find(|l| l.item.starts_with("CloudWatch"))
            .unwrap()
            .dollars_per_million;
        assert!((express.per_million() - quiet.per_million() - logs).abs() < 1e-9);
        // Same Lambda and S3 work on every path.
        let shared = |path: &PathCost| {
            path.lines
                .iter()
                .filter(|l| {
                    l.item.starts_with("Lambda")
                        || l.item.starts_with("S3 PUT")
                        || l.item.starts_with("S3 GET")
                })
                .map(|l| l.dollars_per_million)
                .sum::<f64>()
        };
        assert!((shared(&standard) - shared(&express)).abs() < 1e-9);
        assert!((shared(&express) - shared(&backfill)).abs() < 1e-9);
        let md = markdown(
            &[standard, express, backfill],
            &seed_cost(&Stage {
                name: "seed (sharp)".into(),
                memory_mib: 1024,
                invocations: 1.0,
                cpu_ms: 150.0,
                io_ms: 90.0,
                cold_start_ms: 425.0,
                gb_second_price: PRICES.lambda_x86_64_gb_second,
                basis: String::new(),
            }),
        );
        assert!(
            md.starts_with("| path | $ per million images | × seed |"),
            "{md}"
        );
        assert!(md.contains(PRICES_AS_OF));
    }
}
