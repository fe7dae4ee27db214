//! What a million images cost: Ferrotype's pipeline against the seed's single Node.js Lambda, from the
//! measured durations and the deployed memory sizes.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// Prices (us-east-1) and where they come from.
pub const ARM64_GB_SECOND: f64 = 0.000_013_333_4; // FACTS.md (AWS Lambda pricing page)
pub const X86_64_GB_SECOND: f64 = 0.000_016_666_7; // FACTS.md (AWS Lambda pricing page)
pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6; // AWS Lambda pricing page
pub const SFN_STANDARD_TRANSITION: f64 = 0.025 / 1000.0; // AWS Step Functions pricing page
pub const S3_GET: f64 = 0.0004 / 1000.0; // Amazon S3 pricing page, S3 Standard
pub const S3_PUT: f64 = 0.005 / 1000.0; // Amazon S3 pricing page, S3 Standard
pub const REKOGNITION_IMAGE: f64 = 0.001; // FACTS.md, unverified

/// Assumptions for what this machine cannot measure: S3 seen from a Lambda in the same region.
pub const S3_ROUND_TRIP_MS: f64 = 30.0;
pub const S3_MB_PER_S: f64 = 90.0;
/// Share of invocations that start cold under steady traffic.
pub const COLD_FRACTION: f64 = 0.01;

pub fn s3_get_ms(bytes: f64) -> f64 {
    S3_ROUND_TRIP_MS + bytes / 1e6 / S3_MB_PER_S * 1000.0
}

/// Lambda memory of a stage that decodes whole images (mirrors cdk/lib/memory.ts, decodeMemoryMiB).
pub fn decode_memory_mib(max_pixels: u64) -> u32 {
    let needed = max_pixels as f64 * 16.0 / (1024.0 * 1024.0) + 128.0;
    let rounded = (needed / 64.0).ceil() as u32 * 64;
    rounded.clamp(128, 10_240)
}

/// SMALL_STAGE_MEMORY_MIB from the CDK stack's source (validate and record-result).
pub fn small_stage_memory_mib(stack_source: &str) -> Option<u32> {
    let line = stack_source
        .lines()
        .find(|l| l.contains("SMALL_STAGE_MEMORY_MIB ="))?;
    line.split('=')
        .nth(1)?
        .trim()
        .trim_end_matches(';')
        .trim()
        .parse()
        .ok()
}

/// States entered by one successful execution of the state machine, taking the first branch of every
/// Choice when `first_choice` (faces wanted), its Default otherwise, and running each Map's processor
/// once per item. Step Functions Standard bills one transition per state entered.
pub fn transitions(asl: &Value, map_items: usize, first_choice: bool) -> Result<usize> {
    fn walk(
        states: &Value,
        start: &str,
        items: usize,
        first_choice: bool,
        depth: usize,
    ) -> Result<usize> {
        let mut count = 0;
        let mut current = start.to_string();
        for _ in 0..1000 {
            let state = states
                .get(&current)
                .with_context(|| format!("no state {current:?}"))?;
            count += 1;
            let kind = state["Type"].as_str().unwrap_or_default();
            if kind == "Map" {
                let processor = state
                    .get("ItemProcessor")
                    .or_else(|| state.get("Iterator"))
                    .context("Map without processor")?;
                let start = processor["StartAt"]
                    .as_str()
                    .context("Map processor without StartAt")?;
                count += items * walk(&processor["States"], start, items, first_choice, depth + 1)?;
            }
            let next = if kind == "Choice" {
                if first_choice {
                    state["Choices"][0]["Next"].as_str()
                } else {
                    state["Default"].as_str()
                }
            } else {
                state["Next"].as_str()
            };
            match next {
                Some(n) if !matches!(kind, "Succeed" | "Fail") => current = n.to_string(),
                _ => return Ok(count),
            }
        }
        anyhow::bail!("the state machine loops (depth {depth})")
    }
    let start = asl["StartAt"].as_str().context("ASL without StartAt")?;
    walk(&asl["States"], start, map_items, first_choice, 0)
}

/// One Lambda stage: memory, invocations per image, billed duration.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub memory_mib: u32,
    pub invocations: f64,
    pub duration_ms: f64,
    pub cold_start_ms: f64,
    pub gb_second_price: f64,
    /// How the duration was obtained.
    pub basis: String,
}

impl Stage {
    /// GB-seconds per invocation, durations billed by the started millisecond, cold starts amortised.
    pub fn gb_seconds(&self) -> f64 {
        let billed_ms = self.duration_ms.ceil() + COLD_FRACTION * self.cold_start_ms.ceil();
        self.memory_mib as f64 / 1024.0 * billed_ms / 1000.0
    }
    pub fn cost_per_image(&self) -> f64 {
        self.invocations * (self.gb_seconds() * self.gb_second_price + LAMBDA_REQUEST)
    }
}

pub struct Deployment {
    pub title: String,
    pub stages: Vec<Stage>,
    pub transitions: usize,
    pub s3_gets: usize,
    pub s3_puts: usize,
}

impl Deployment {
    pub fn lambda_per_image(&self) -> f64 {
        self.stages.iter().map(Stage::cost_per_image).sum()
    }
    pub fn per_image(&self) -> f64 {
        self.lambda_per_image()
            + self.transitions as f64 * SFN_STANDARD_TRANSITION
            + self.s3_gets as f64 * S3_GET
            + self.s3_puts as f64 * S3_PUT
    }
}

pub fn read_asl(path: &Path) -> Result<Value> {
    serde_json::from_slice(
        &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))
}

pub fn markdown(ours: &Deployment, seed: &Deployment) -> String {
    let mut md = String::new();
    let million = 1e6;
    for d in [ours, seed] {
        let _ = writeln!(md, "**{}**\n", d.title);
        let _ = writeln!(md, "| item | memory MiB | per image | ms each | GB-s per M images | $ per M images | basis |");
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---|");
        for s in &d.stages {
            let _ = writeln!(
                md,
                "| Lambda {} | {} | {} | {:.1} | {:.0} | {:.2} | {} |",
                s.name,
                s.memory_mib,
                s.invocations,
                s.duration_ms,
                s.invocations * s.gb_seconds() * million,
                s.cost_per_image() * million,
                s.basis
            );
        }
        if d.transitions > 0 {
            let _ = writeln!(
                md,
                "| Step Functions Standard transitions | | {} | | | {:.2} | counted on statemachine/pipeline.asl.json |",
                d.transitions,
                d.transitions as f64 * SFN_STANDARD_TRANSITION * million
            );
        }
        let _ = writeln!(
            md,
            "| S3 GET | | {} | | | {:.2} | |",
            d.s3_gets,
            d.s3_gets as f64 * S3_GET * million
        );
        let _ = writeln!(
            md,
            "| S3 PUT | | {} | | | {:.2} | |",
            d.s3_puts,
            d.s3_puts as f64 * S3_PUT * million
        );
        let _ = writeln!(
            md,
            "| **total** | | | | | **{:.2}** | |\n",
            d.per_image() * million
        );
    }
    let _ = writeln!(
        md,
        "With `smartCrop: \"rekognition\"` add Rekognition DetectFaces: ${:.2} per M images (about $0.001 per \
         image, *unverified*), which then dominates: total ${:.2} per M.\n",
        REKOGNITION_IMAGE * million,
        (ours.per_image() + REKOGNITION_IMAGE) * million
    );
    let _ = writeln!(
        md,
        "Prices (us-east-1): Lambda arm64 ${ARM64_GB_SECOND}/GB-s and x86_64 ${X86_64_GB_SECOND}/GB-s \
         (FACTS.md), requests $0.20 per M; Step Functions Standard $0.025 per 1,000 transitions; S3 \
         Standard GET $0.0004 and PUT $0.005 per 1,000 (public AWS pricing pages, not re-checked from \
         here: *unverified*); Rekognition as above. Assumed, not measured: S3 from Lambda {S3_ROUND_TRIP_MS} ms \
         per request plus {S3_MB_PER_S} MB/s; {:.0} % of invocations cold (init billed); durations measured \
         on this machine's CPU, not on Graviton. EventBridge delivery of S3 events and the upload itself are \
         left out of both.",
        COLD_FRACTION * 100.0
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_memory_matches_the_cdk_example() {
        // cdk/lib/memory.ts: 100,000,000 px needs 1526 + 128 MiB, rounded up to 1664.
        assert_eq!(decode_memory_mib(100_000_000), 1664);
        assert_eq!(decode_memory_mib(1), 192);
        assert_eq!(decode_memory_mib(10_000_000_000), 10_240);
    }

    #[test]
    fn small_stage_memory_is_read_from_the_stack_source() {
        assert_eq!(
            small_stage_memory_mib("const X = 1;\nconst SMALL_STAGE_MEMORY_MIB = 256;\n"),
            Some(256)
        );
        assert_eq!(small_stage_memory_mib("nothing here"), None);
    }

    #[test]
    fn transitions_follow_choices_and_maps() {
        let asl: Value = serde_json::json!({
            "StartAt": "A",
            "States": {
                "A": { "Type": "Task", "Next": "C" },
                "C": { "Type": "Choice", "Choices": [{ "Next": "B" }], "Default": "P" },
                "B": { "Type": "Task", "Next": "M" },
                "P": { "Type": "Pass", "Next": "M" },
                "M": { "Type": "Map", "ItemProcessor": { "StartAt": "R", "States": {
                    "R": { "Type": "Task", "Next": "S" }, "S": { "Type": "Pass", "End": true } } }, "Next": "D" },
                "D": { "Type": "Succeed" }
            }
        });
        assert_eq!(transitions(&asl, 3, true).unwrap(), 5 + 3 * 2);
        assert_eq!(transitions(&asl, 0, false).unwrap(), 5);
    }

    #[test]
    fn the_projects_state_machine_is_countable() {
        let asl = read_asl(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../statemachine/pipeline.asl.json"),
        )
        .unwrap();
        let with_faces = transitions(&asl, 3, true).unwrap();
        let without = transitions(&asl, 3, false).unwrap();
        assert!(
            with_faces >= 3 + 3,
            "at least validate, map, record and three renders: {with_faces}"
        );
        assert!(without <= with_faces);
    }

    #[test]
    fn billing_rounds_up_and_amortises_cold_starts() {
        let stage = Stage {
            name: "x".into(),
            memory_mib: 1024,
            invocations: 1.0,
            duration_ms: 99.2,
            cold_start_ms: 100.0,
            gb_second_price: 1.0,
            basis: String::new(),
        };
        assert!((stage.gb_seconds() - (100.0 + 1.0) / 1000.0).abs() < 1e-12);
    }
}
