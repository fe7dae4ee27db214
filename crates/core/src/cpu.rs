//! Where CPU-bound work (decoding, encoding, face detection) runs when called from async code.

/// The work panicked (or its thread was lost); the payload is not kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the CPU-bound task panicked")]
pub struct CpuTaskPanicked;

/// Runs `work` without holding up the runtime's other tasks: on Tokio's blocking pool, except on a
/// current-thread runtime, where it runs in place. There the thread would wait for it anyway, and
/// running in place keeps a seeded simulation of the pipeline (tests/simulation.rs, on a
/// current-thread runtime with paused time) exactly reproducible: no other thread decides when it ends.
pub async fn run<T, F>(work: F) -> Result<T, CpuTaskPanicked>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let flavor = tokio::runtime::Handle::current().runtime_flavor();
    if flavor == tokio::runtime::RuntimeFlavor::CurrentThread {
        return std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .map_err(|_| CpuTaskPanicked);
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| CpuTaskPanicked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn runs_in_place_on_a_current_thread_runtime() {
        let here = std::thread::current().id();
        assert_eq!(run(move || std::thread::current().id()).await, Ok(here));
        assert_eq!(run(|| -> u8 { panic!("boom") }).await, Err(CpuTaskPanicked));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn runs_on_the_blocking_pool_otherwise() {
        let here = std::thread::current().id();
        assert_ne!(run(move || std::thread::current().id()).await, Ok(here));
        assert_eq!(run(|| -> u8 { panic!("boom") }).await, Err(CpuTaskPanicked));
    }
}
