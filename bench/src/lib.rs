//! Benchmarks, each run side by side with its baseline in the same run (`ip -batch`,
//! `nft -f`, BIRD); `make bench` prints the ratios recorded in BENCHMARKS.md.
