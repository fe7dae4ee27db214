//! Cold start of a Lambda bootstrap: from process start until it polls for its first event.
//!
//! A minimal stand-in for the Lambda Runtime API listens on 127.0.0.1; the bootstrap is started with
//! AWS_LAMBDA_RUNTIME_API pointing at it and the environment Lambda would give it (dummy credentials,
//! a region, the config). The clock stops when `GET /2018-06-01/runtime/invocation/next` arrives; the
//! process's peak RSS is read then, and the process is ended (it would wait for an event forever).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::measure::median;

pub const NEXT_INVOCATION: &str = "/2018-06-01/runtime/invocation/next";
const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A program to start as a Lambda would.
pub struct Target {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub memory_mib: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ColdStart {
    pub name: String,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub runs: usize,
    /// Peak RSS when it first polled: the idle footprint of the initialised function.
    pub rss_at_poll_kib: u64,
}

/// What the stand-in saw of one start.
enum FirstRequest {
    NextInvocation,
    InitError(String),
}

/// Reads one HTTP request (request line, headers, body by Content-Length) and answers it.
fn read_request(stream: &mut TcpStream) -> Result<(String, String, String)> {
    stream.set_read_timeout(Some(START_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut content_length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap_or(0).min(1 << 20);
            }
        }
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body)?;
    Ok((method, path, String::from_utf8_lossy(&body).into_owned()))
}

fn serve_until_first_poll(listener: &TcpListener, child: &mut Child) -> Result<FirstRequest> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                stream.set_nonblocking(false)?;
                let (method, path, body) = read_request(&mut stream)?;
                if method == "GET" && path == NEXT_INVOCATION {
                    return Ok(FirstRequest::NextInvocation);
                }
                let _ = stream.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}");
                if path == INIT_ERROR {
                    return Ok(FirstRequest::InitError(body));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(status) = child.try_wait()? {
                    bail!("exited ({status}) before polling for an event");
                }
                if Instant::now() > deadline {
                    bail!("did not poll for an event within {START_TIMEOUT:?}");
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn peak_rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// One cold start: returns (ms until the first poll, peak RSS then).
fn start_once(target: &Target) -> Result<(f64, u64)> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the runtime API stand-in")?;
    let address = listener.local_addr()?;
    let mut command = Command::new(&target.program);
    command
        .args(&target.args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", &target.name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            target.memory_mib.to_string(),
        )
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", target.name),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        // Lambda passes the role's credentials in the environment; dummies keep the SDK off the network.
        .env("AWS_ACCESS_KEY_ID", "AKIDBENCHMARKONLY")
        .env("AWS_SECRET_ACCESS_KEY", "benchmark-only")
        .env("AWS_SESSION_TOKEN", "benchmark-only")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .envs(target.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", target.program.display()))?;
    let outcome = serve_until_first_poll(&listener, &mut child);
    let elapsed = start.elapsed();
    let rss = peak_rss_of(child.id());
    let _ = child.kill();
    let output = child.wait_with_output()?;
    match outcome {
        Ok(FirstRequest::NextInvocation) => Ok((elapsed.as_secs_f64() * 1000.0, rss)),
        Ok(FirstRequest::InitError(body)) => {
            bail!("{} reported an init error: {body}", target.name)
        }
        Err(e) => {
            bail!(
                "{}: {e}; stderr: {}",
                target.name,
                String::from_utf8_lossy(&output.stderr).trim()
            )
        }
    }
}

/// `runs` cold starts of `target`, after one untimed start that brings the binary into the page cache
/// (so the figure is process start and initialisation, not this machine's disk).
pub fn measure(target: &Target, runs: usize) -> Result<ColdStart> {
    start_once(target)?;
    let mut samples = Vec::with_capacity(runs);
    let mut rss = 0;
    for _ in 0..runs.max(1) {
        let (ms, peak) = start_once(target)?;
        samples.push(ms);
        rss = rss.max(peak);
    }
    Ok(ColdStart {
        name: target.name.clone(),
        median_ms: median(&samples),
        min_ms: samples.iter().copied().fold(f64::INFINITY, f64::min),
        max_ms: samples.iter().copied().fold(0.0, f64::max),
        runs: samples.len(),
        rss_at_poll_kib: rss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_polls_is_timed_and_one_that_exits_is_an_error() {
        // curl-free poller: bash's /dev/tcp sends the request the way a runtime client would.
        let poll = format!(
            "exec 3<>/dev/tcp/${{AWS_LAMBDA_RUNTIME_API%:*}}/${{AWS_LAMBDA_RUNTIME_API#*:}}; \
             printf 'GET {NEXT_INVOCATION} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' >&3; sleep 5"
        );
        let poller = Target {
            name: "poller".into(),
            program: "bash".into(),
            args: vec!["-c".into(), poll],
            env: vec![],
            memory_mib: 128,
        };
        let result = measure(&poller, 2).unwrap();
        assert_eq!(result.runs, 2);
        assert!(
            result.median_ms > 0.0 && result.median_ms < 5000.0,
            "{result:?}"
        );

        let quitter = Target {
            name: "quitter".into(),
            program: "bash".into(),
            args: vec!["-c".into(), "exit 3".into()],
            env: vec![],
            memory_mib: 128,
        };
        let error = measure(&quitter, 1).unwrap_err().to_string();
        assert!(error.contains("before polling"), "{error}");
    }
}
