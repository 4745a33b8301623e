//! NetworkWordCount: counts the words of text lines read from a TCP socket, every second.
//!
//! Run `nc -lk 9999` in one terminal (type lines into it), then in another:
//! `cargo run --release -p spate-examples --bin network_word_count -- localhost 9999`
//!
//! Options: `--master local[2]` (default), `--batches N` (stop after N batches; default: run until
//! interrupted), `--batch-ms 1000`.
//!
//! Until the DStream layer and its socket receiver land, this program does the receiving itself:
//! a thread reads lines, and every batch interval the lines received in that interval become an
//! RDD that is word-counted on the Spate core, printed in Spark Streaming's format.

use anyhow::{Context as _, bail};
use spate_core::{Context, ToText};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct Args {
    host: String,
    port: u16,
    master: String,
    batches: Option<u64>,
    batch_ms: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut positional = Vec::new();
    let mut args = Args {
        host: String::new(),
        port: 0,
        master: "local[2]".into(),
        batches: None,
        batch_ms: 1000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--master" => args.master = it.next().context("--master needs a value")?,
            "--batches" => {
                args.batches = Some(it.next().context("--batches needs a value")?.parse()?)
            }
            "--batch-ms" => {
                args.batch_ms = it.next().context("--batch-ms needs a value")?.parse()?
            }
            "-h" | "--help" => {
                println!(
                    "usage: network_word_count HOST PORT [--master M] [--batches N] [--batch-ms MS]"
                );
                std::process::exit(0);
            }
            _ => positional.push(a),
        }
    }
    match positional.as_slice() {
        [host, port] => {
            args.host = host.clone();
            args.port = port
                .parse()
                .with_context(|| format!("invalid port {port:?}"))?;
        }
        _ => {
            bail!("usage: network_word_count HOST PORT [--master M] [--batches N] [--batch-ms MS]")
        }
    }
    if args.batch_ms == 0 {
        bail!("--batch-ms must be positive");
    }
    Ok(args)
}

/// Reads lines from `host:port` forever, reconnecting with backoff when the connection is refused
/// or lost (logged, never fatal).
fn receive(host: String, port: u16, tx: mpsc::Sender<String>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match TcpStream::connect((host.as_str(), port)) {
            Ok(stream) => {
                eprintln!("connected to {host}:{port}");
                backoff = Duration::from_millis(100);
                for line in BufReader::new(stream).lines() {
                    match line {
                        Ok(l) => {
                            if tx.send(l).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            eprintln!(
                                "connection to {host}:{port} lost or sent invalid UTF-8: {e}"
                            );
                            break;
                        }
                    }
                }
            }
            Err(e) => eprintln!("cannot connect to {host}:{port}: {e}; retrying in {backoff:?}"),
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let ctx = Context::new(&args.master)?;
    let (tx, rx) = mpsc::channel();
    let (host, port) = (args.host.clone(), args.port);
    std::thread::spawn(move || receive(host, port, tx));

    let batch = args.batch_ms;
    let mut time = (now_ms() / batch + 1) * batch;
    let mut done = 0;
    while args.batches.is_none_or(|n| done < n) {
        let now = now_ms();
        if now < time {
            std::thread::sleep(Duration::from_millis(time - now));
        }
        let lines: Vec<String> = rx.try_iter().collect();
        let counts = ctx
            .parallelize(lines, ctx.default_parallelism())
            .flat_map(|l: String| {
                l.split(' ')
                    .filter(|w| !w.is_empty())
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .map(|w| (w, 1u64))
            .reduce_by_key(|a, b| a + b);
        let first = counts.take(11)?;
        println!("-------------------------------------------");
        println!("Time: {time} ms");
        println!("-------------------------------------------");
        for pair in first.iter().take(10) {
            println!("{}", pair.to_text());
        }
        if first.len() > 10 {
            println!("...");
        }
        println!();
        time += batch;
        done += 1;
    }
    Ok(())
}
