//! Starts the engine and the session source that the command line names, for the window
//! and the headless mode alike. Runs on the main thread at start-up and exit.

use std::time::Duration;

use anyhow::Context as _;
use crossbeam_channel::Receiver;

use crate::cli::{Options, Speed};
use crate::engine::clock::{SharedClock, SystemClock};
use crate::engine::event::Update;
use crate::engine::{Engine, EngineConfig, Waker};
use crate::sources::RunningSource;
use crate::sources::replay::{self, ReplayOptions, ReplayPlan};
use crate::sources::simulator::{self, SimulatorOptions};

/// Name of the program's scheduler; a second one in the same process is rejected.
pub const SCHEDULER_NAME: &str = "session-engine";

/// A running engine with its source.
pub struct Runtime {
    /// The engine.
    pub engine: Engine,
    /// Updates from the engine.
    pub updates: Receiver<Update>,
    /// The source feeding it.
    pub source: RunningSource,
}

impl Runtime {
    /// Starts the engine and the source named by `options`; `waker` is called after each
    /// update the engine sends.
    pub fn start(options: &Options, waker: Waker) -> anyhow::Result<Runtime> {
        let config = EngineConfig {
            name: SCHEDULER_NAME.into(),
            idle_timeout: options.idle_timeout(),
            sweep_interval: options.sweep_interval(),
            ..EngineConfig::default()
        };

        match &options.replay {
            Some(path) => {
                let speed = match options.speed {
                    Speed::Factor(factor) => replay::Speed::Factor(factor),
                    Speed::Max => replay::Speed::Max,
                };
                let plan = ReplayPlan::open(ReplayOptions {
                    path: path.clone(),
                    speed,
                    reorder_window: options.reorder_window,
                })?;
                let (engine, updates) = Engine::start(config, plan.clock(), waker)?;
                let source = plan
                    .spawn(engine.commands())
                    .context("failed to start the replay thread")?;
                Ok(Runtime {
                    engine,
                    updates,
                    source,
                })
            }
            None => {
                let clock: SharedClock = std::sync::Arc::new(SystemClock::new());
                let (engine, updates) = Engine::start(config, clock.clone(), waker)?;
                let simulator_options = SimulatorOptions {
                    users: options.users as usize,
                    seed: options.seed,
                    idle_timeout: options.idle_timeout(),
                };
                let source = simulator::spawn(simulator_options, engine.commands(), clock)
                    .context("failed to start the simulator thread")?;
                Ok(Runtime {
                    engine,
                    updates,
                    source,
                })
            }
        }
    }

    /// Stops the source, then the engine. Returns the updates still in the channel
    /// followed by those the engine could not send, in order.
    pub fn shutdown(self) -> Vec<Update> {
        let Runtime {
            engine,
            updates,
            source,
        } = self;
        source.stop();
        let leftovers = engine.shutdown();
        let mut all: Vec<Update> = updates.try_iter().collect();
        all.extend(leftovers);
        all
    }

    /// Waits until the engine has applied everything sent so far.
    pub fn sync(&self) -> anyhow::Result<()> {
        self.engine
            .sync(Duration::from_secs(30))
            .context("the engine did not finish applying the input")
    }
}
