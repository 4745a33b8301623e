//! The executor role: a process of the job's own binary (`--executor --driver HOST:PORT`) that
//! joins a driver, heartbeats, and serves the driver's block requests from a block manager of its
//! own. It exits when the driver says so or its connection to the driver ends.

use super::protocol::{self, Message, Request, Response};
use crate::{Error, Result};
use spate_storage::{BlockManager, BlockManagerConfig, Codec};
use std::time::Duration;

/// How often an executor tells the driver it is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);

/// Settings of an executor process.
#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    /// The driver to join, `HOST:PORT`.
    pub driver: String,
    /// Task threads offered.
    pub cores: usize,
    /// Memory budget of its block manager.
    pub memory_bytes: u64,
    /// How long to keep trying to reach the driver.
    pub connect_timeout: Duration,
}

impl ExecutorConfig {
    /// Defaults for joining `driver`.
    pub fn new(driver: &str, cores: usize) -> ExecutorConfig {
        ExecutorConfig {
            driver: driver.to_string(),
            cores: cores.max(1),
            memory_bytes: 512 << 20,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

fn cluster_err(what: String) -> Error {
    Error::Cluster(what)
}

/// Runs the executor role until the driver shuts it down or goes away.
pub fn run_executor(config: &ExecutorConfig) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| cluster_err(format!("cannot start the executor's runtime: {e}")))?;
    let blocks = BlockManager::new(BlockManagerConfig {
        memory_bytes: config.memory_bytes,
        scratch_parent: std::env::temp_dir(),
        codec: Codec::None,
    })?;
    runtime.block_on(serve(config, &blocks))
}

async fn connect(config: &ExecutorConfig) -> Result<tokio::net::TcpStream> {
    let deadline = tokio::time::Instant::now() + config.connect_timeout;
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(&config.driver),
        )
        .await;
        let error = match attempt {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(cluster_err(format!(
                "cannot reach the driver at {}: {error} (tried for {:?}); check --driver HOST:PORT and that the driver is running",
                config.driver, config.connect_timeout
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn serve(config: &ExecutorConfig, blocks: &BlockManager) -> Result<()> {
    let stream = connect(config).await?;
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let proto = |e: protocol::ProtocolError| {
        cluster_err(format!("talking to the driver at {}: {e}", config.driver))
    };
    protocol::write(
        &mut writer,
        &Message::Register {
            cores: config.cores as u32,
            pid: std::process::id(),
        },
    )
    .await
    .map_err(proto)?;
    let id = match protocol::read(&mut reader).await.map_err(proto)? {
        Some(Message::Registered { executor }) => executor,
        other => {
            return Err(cluster_err(format!(
                "the driver at {} answered the registration with {other:?}",
                config.driver
            )));
        }
    };
    tracing::info!(executor = id, driver = %config.driver, cores = config.cores, "executor registered");
    let mut ticker = tokio::time::interval(HEARTBEAT_INTERVAL);
    loop {
        tokio::select! {
            message = protocol::read(&mut reader) => {
                let reply = match message.map_err(proto)? {
                    None | Some(Message::Shutdown) => {
                        tracing::info!(executor = id, "the driver is done; exiting");
                        return Ok(());
                    }
                    Some(Message::Request { id: req, body }) => Message::Response {
                        id: req,
                        body: handle(blocks, body),
                    },
                    Some(other) => {
                        tracing::warn!(executor = id, message = ?other, "unexpected message from the driver; ignored");
                        continue;
                    }
                };
                protocol::write(&mut writer, &reply).await.map_err(proto)?;
            }
            _ = ticker.tick() => {
                let stats = blocks.stats();
                let beat = Message::Heartbeat {
                    blocks: (stats.memory_blocks + stats.disk_blocks) as u64,
                    memory_bytes: stats.memory_bytes,
                };
                protocol::write(&mut writer, &beat).await.map_err(proto)?;
            }
        }
    }
}

fn handle(blocks: &BlockManager, request: Request) -> Response {
    match request {
        Request::PutBlock {
            block,
            level,
            bytes,
        } => match blocks.put_bytes(block, bytes, level) {
            Ok(spate_storage::PutOutcome::NotStored) => {
                Response::Failed("the executor has no room for the block".into())
            }
            Ok(_) => Response::Stored,
            Err(e) => Response::Failed(e.to_string()),
        },
        Request::GetBlock { block } => match blocks.get_bytes(&block) {
            Ok(b) => Response::Block(b),
            Err(e) => Response::Failed(e.to_string()),
        },
        Request::RemoveBlock { block } => Response::Removed(blocks.remove(&block)),
    }
}
