//! Times cryprot-ot 0.3.0 semi-honest silent correlated OT, both parties in one process over
//! cryprot-net's local connection, for 2^16 … 2^22 COTs; prints wall time and process CPU time.

use cryprot_core::Block;
use cryprot_net::testing::local_conn;
use cryprot_ot::silent_ot::{SemiHonestSilentOtReceiver, SemiHonestSilentOtSender};
use std::time::Instant;

fn proc_cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    let u: f64 = f[11].parse().unwrap();
    let k: f64 = f[12].parse().unwrap();
    (u + k) / 100.0
}

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (c1, c2) = local_conn().await.unwrap();
        let mut sender = SemiHonestSilentOtSender::new(c1);
        let mut receiver = SemiHonestSilentOtReceiver::new(c2);
        for p in [16u32, 18, 20, 22] {
            let count = 1usize << p;
            for rep in 0..2 {
                let now = Instant::now();
                let c0 = proc_cpu_s();
                (sender, receiver) = tokio::try_join!(
                    tokio::spawn(async move { sender.correlated_send(count, Block::ONES).await.unwrap(); sender }),
                    tokio::spawn(async move { receiver.correlated_receive(count).await.unwrap(); receiver })
                ).unwrap();
                let s = now.elapsed().as_secs_f64();
                let cpu = proc_cpu_s() - c0;
                println!("{{\"impl\":\"cryprot-ot 0.3.0\",\"threads\":{threads},\"log_n\":{p},\"rep\":{rep},\"ms\":{:.1},\"cot_per_s\":{:.0},\"cpu_s_both\":{:.2},\"cot_per_cpu_s_per_party\":{:.0}}}", s*1e3, count as f64 / s, cpu, 2.0 * count as f64 / cpu);
            }
        }
    });
}
