//! Starts the engine and the session sources that the command line names, for the
//! window and the headless mode alike. Runs on the main thread at start-up and exit.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use crossbeam_channel::Receiver;

use crate::cli::{Options, Speed};
use crate::engine::clock::{SharedClock, SystemClock};
use crate::engine::event::Update;
use crate::engine::{Engine, EngineConfig, Waker};
use crate::sources::RunningSource;
use crate::sources::api::{self, ApiOptions, Token};
use crate::sources::replay::{self, ReplayOptions, ReplayPlan};
use crate::sources::simulator::{self, SimulatorOptions};

/// Name of the program's scheduler; a second one in the same process is rejected.
pub const SCHEDULER_NAME: &str = "session-engine";

/// Longest wait at shutdown for the engine to apply the sources' last commands.
const SHUTDOWN_SYNC: Duration = Duration::from_millis(250);

/// A running engine with its sources.
pub struct Runtime {
    /// The engine.
    pub engine: Engine,
    /// Updates from the engine.
    pub updates: Receiver<Update>,
    /// The sources feeding it, in the order the window lists them.
    pub sources: Vec<RunningSource>,
}

impl Runtime {
    /// Starts the engine and the sources named by `options`; `waker` is called after
    /// each update the engine sends.
    ///
    /// Sources: `--replay` replays a log and `--listen` serves the API, together or
    /// alone. The simulator runs when neither is given, or beside the API with
    /// `--simulate`. A replay's clock follows the log; otherwise the clock is the
    /// system's.
    pub fn start(options: &Options, waker: Waker) -> anyhow::Result<Runtime> {
        Self::start_with_record_limit(options, waker, EngineConfig::default().max_pending_records)
    }

    /// Starts the engine and sources for headless mode. The main thread reads every
    /// update, so log records wait in the engine without a cap and none is dropped,
    /// however fast a replay produces them. Standard output sets the pace.
    pub fn start_headless(options: &Options) -> anyhow::Result<Runtime> {
        Self::start_with_record_limit(options, crate::engine::no_waker(), usize::MAX)
    }

    fn start_with_record_limit(
        options: &Options,
        waker: Waker,
        max_pending_records: usize,
    ) -> anyhow::Result<Runtime> {
        let config = EngineConfig {
            name: SCHEDULER_NAME.into(),
            idle_timeout: options.idle_timeout(),
            sweep_interval: options.sweep_interval(),
            max_pending_records,
            ..EngineConfig::default()
        };
        let replay_plan = match &options.replay {
            Some(path) => Some(open_replay(path, options)?),
            None => None,
        };
        let api_options = options
            .listen
            .map(|listen| api_options(listen, options))
            .transpose()?;
        let clock: SharedClock = match &replay_plan {
            Some(plan) => plan.clock(),
            None => Arc::new(SystemClock::new()),
        };
        let (engine, updates) = Engine::start(config, Arc::clone(&clock), waker)?;

        // The API binds first, so a port in use fails before any other source starts.
        let api = match api_options {
            Some(api_options) => Some(api::start(
                api_options,
                engine.commands(),
                Arc::clone(&clock),
            )?),
            None => None,
        };
        let mut sources = Vec::new();
        if let Some(plan) = replay_plan {
            let replay = plan
                .spawn(engine.commands())
                .context("failed to start the replay thread")?;
            sources.push(replay);
        } else if api.is_none() || options.simulate {
            let simulator_options = SimulatorOptions {
                users: options.users as usize,
                seed: options.seed,
                idle_timeout: options.idle_timeout(),
            };
            let simulator = simulator::spawn(simulator_options, engine.commands(), clock)
                .context("failed to start the simulator thread")?;
            sources.push(simulator);
        }
        sources.extend(api);
        Ok(Runtime {
            engine,
            updates,
            sources,
        })
    }

    /// Returns the address the API listens on, when it runs.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.sources.iter().find_map(RunningSource::local_addr)
    }

    /// Returns whether every source has run out of input. The simulator and the API
    /// never do.
    pub fn sources_finished(&self) -> bool {
        self.sources
            .iter()
            .all(|source| source.stats().is_finished())
    }

    /// Stops the sources, then the engine. Returns the updates still in the channel
    /// followed by those the engine could not send, in order.
    pub fn shutdown(self) -> Vec<Update> {
        let Runtime {
            engine,
            updates,
            sources,
        } = self;
        for source in sources {
            source.stop();
        }
        // Lets the engine apply what the sources sent last, such as the API's closing
        // log line, unless it is too busy to do so quickly.
        if let Err(error) = engine.sync(SHUTDOWN_SYNC) {
            log::debug!("stopping the engine without applying every command: {error}");
        }
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

fn open_replay(path: &Path, options: &Options) -> anyhow::Result<ReplayPlan> {
    let speed = match options.speed {
        Speed::Factor(factor) => replay::Speed::Factor(factor),
        Speed::Max => replay::Speed::Max,
    };
    let plan = ReplayPlan::open(ReplayOptions {
        path: path.to_owned(),
        speed,
        reorder_window: options.reorder_window,
    })?;
    Ok(plan)
}

/// Builds the API's options, reading the token file if one is given.
fn api_options(listen: SocketAddr, options: &Options) -> anyhow::Result<ApiOptions> {
    let token = match &options.token_file {
        Some(path) => Some(Token::from_file(path)?),
        None => None,
    };
    Ok(ApiOptions {
        token,
        ..ApiOptions::new(listen)
    })
}
