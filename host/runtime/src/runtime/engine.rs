//! The engine: epochs for deadlines, the pooling allocator, the thread that
//! advances the epoch, and the memory cap of one call.

use std::time::Duration;

use wasmtime::{Config, Engine, ResourceLimiter};

/// How often the engine's epoch advances; each tick lets a busy guest yield.
/// Short, because Tokio polls for I/O only every few dozen task polls: with
/// 10 ms slices a spinning guest held a one-thread runtime's I/O for over
/// half a second and made the other calls time out.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Memory a call's instance may use.
pub(super) const MEMORY_LIMIT: usize = 64 << 20;

/// How much of a pooled slot's table and stack stays mapped between calls.
const KEEP_RESIDENT: usize = 64 << 10;

/// How much of a pooled slot's linear memory may stay mapped between calls:
/// more than a call's working set (stack, data, heap), so that, where the
/// kernel can say which pages a call wrote, only those are reset.
const MEMORY_KEEP_RESIDENT: usize = 4 << 20;

/// How many calls may hold an instance at once with the pooling allocator.
pub const POOL_SLOTS: u32 = 1000;

/// The engine: with the instance pool unless `pooling` is off. A host whose
/// address space is capped cannot reserve the pool: it still runs, mapping
/// each instance afresh, and says so.
pub(super) fn new_engine(pooling: bool) -> wasmtime::Result<Engine> {
    match Engine::new(&engine_config(pooling)) {
        Err(e) if pooling => {
            tracing::warn!(target: "api_entreprise::runtime", "no instance pool ({e:#}); instances are mapped per call");
            Engine::new(&engine_config(false))
        }
        engine => engine,
    }
}

/// The engine's configuration: epochs for deadlines, and the pooling
/// allocator unless `pooling` is off.
fn engine_config(pooling: bool) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    // `perf` names the component's functions when asked (BENCHMARKS.md).
    if std::env::var_os("API_ENTREPRISE_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if pooling {
        // Instances come from a pool of slots reserved once, instead of
        // fresh mappings for every call's store. A client has one linear
        // memory; each slot reserves address space (wasmtime's 4 GiB
        // guard region), not RAM.
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_SLOTS)
            .total_core_instances(POOL_SLOTS * 4)
            .total_memories(POOL_SLOTS)
            .total_tables(POOL_SLOTS * 4)
            .max_memory_size(MEMORY_LIMIT)
            // A freed slot keeps its first pages mapped (zeroed in place)
            // rather than returned to the kernel: the next call's instance
            // then takes no page faults on them.
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
            // Linux 6.7 and later say which pages were written (the
            // PAGEMAP_SCAN ioctl): only those are reset in place, with no
            // madvise and no page faults for the next call; elsewhere the
            // first pages are reset as before.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .table_keep_resident(KEEP_RESIDENT)
            .async_stack_keep_resident(KEEP_RESIDENT);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Advances the engine's epoch until the engine is dropped.
pub(crate) fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("api-entreprise-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

/// Caps a call's memory at [`MEMORY_LIMIT`]. Past it the guest traps
/// (rather than seeing an allocation fail), and the host remembers why.
#[derive(Default)]
pub(super) struct MemoryCap {
    pub(super) exhausted: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > MEMORY_LIMIT {
            self.exhausted = true;
            wasmtime::bail!("the component asked for {desired} bytes of memory");
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, _desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
}
