//! A stand-in for the AWS Lambda Runtime API on 127.0.0.1, enough to run a real bootstrap process as
//! Lambda does: it hands out queued events on `GET /2018-06-01/runtime/invocation/next` (long-polled),
//! and records what the function posts back to `…/response`, `…/error` and `/runtime/init/error`.
//! HTTP/1.1 with keep-alive, bodies by Content-Length or chunked.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const INVOCATION: &str = "/2018-06-01/runtime/invocation/";
const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";
/// Largest body accepted from the function (Lambda's response limit is 6 MB).
const MAX_BODY: usize = 6 << 20;

/// What the function answered for one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Response(serde_json::Value),
    /// The error document (`{"errorType", "errorMessage"}`) as posted.
    Error(serde_json::Value),
}

#[derive(Default)]
struct State {
    queued: VecDeque<(String, String)>,
    answers: HashMap<String, Answer>,
    init_error: Option<String>,
    next_id: u64,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

pub struct RuntimeApi {
    address: SocketAddr,
    shared: Arc<Shared>,
}

impl RuntimeApi {
    pub fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the runtime API");
        let address = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let serving = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = serving.clone();
                std::thread::spawn(move || {
                    let _ = serve_connection(stream, &shared);
                });
            }
        });
        RuntimeApi { address, shared }
    }

    /// `host:port`, the value of AWS_LAMBDA_RUNTIME_API.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Queues an event and waits for the function's answer.
    pub fn invoke(&self, payload: &serde_json::Value, timeout: Duration) -> Answer {
        let id = {
            let mut state = self.shared.state.lock().unwrap();
            state.next_id += 1;
            let id = format!("request-{}", state.next_id);
            state.queued.push_back((id.clone(), payload.to_string()));
            id
        };
        self.shared.changed.notify_all();
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state.lock().unwrap();
        loop {
            if let Some(answer) = state.answers.remove(&id) {
                return answer;
            }
            if let Some(init_error) = &state.init_error {
                panic!("the function failed to initialise: {init_error}");
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("no answer to {id} within {timeout:?}"));
            state = self.shared.changed.wait_timeout(state, left).unwrap().0;
        }
    }
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

fn serve_connection(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    while let Some(request) = read_request(&mut reader)? {
        if request.method == "GET" && request.path == NEXT {
            let (id, payload) = wait_for_event(shared);
            let deadline_ms = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 60_000;
            write!(
                writer,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 lambda-runtime-aws-request-id: {id}\r\nlambda-runtime-deadline-ms: {deadline_ms}\r\n\
                 lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:test\r\n\
                 lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000;Sampled=0\r\n\r\n{payload}",
                payload.len()
            )?;
            writer.flush()?;
            continue;
        }
        let body: serde_json::Value =
            serde_json::from_slice(&request.body).unwrap_or(serde_json::Value::Null);
        {
            let mut state = shared.state.lock().unwrap();
            if request.path == INIT_ERROR {
                state.init_error = Some(String::from_utf8_lossy(&request.body).into_owned());
            } else if let Some(rest) = request.path.strip_prefix(INVOCATION) {
                if let Some(id) = rest.strip_suffix("/response") {
                    state.answers.insert(id.to_owned(), Answer::Response(body));
                } else if let Some(id) = rest.strip_suffix("/error") {
                    state.answers.insert(id.to_owned(), Answer::Error(body));
                }
            }
        }
        shared.changed.notify_all();
        writer.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 16\r\n\r\n{\"status\":\"OK\"}\n")?;
        writer.flush()?;
    }
    Ok(())
}

fn wait_for_event(shared: &Shared) -> (String, String) {
    let mut state = shared.state.lock().unwrap();
    loop {
        if let Some(event) = state.queued.pop_front() {
            return event;
        }
        state = shared.changed.wait(state).unwrap();
    }
}

/// One HTTP/1.1 request, or None when the client closed the connection.
fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(reader)?
    } else {
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length.min(MAX_BODY)];
        reader.read_exact(&mut body)?;
        body
    };
    Ok(Some(Request { method, path, body }))
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size =
            usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        if size == 0 {
            // Trailers, then the blank line.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(std::io::Error::other("body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf)?;
    }
}
