#!/usr/bin/env bash
# `nodekeeper log analyze --json` on a generated restart log of 10 million rows (about 1 GB),
# side by side with the same report computed by pandas (benches/analyze/analyze_pandas.py):
# both timings, the ratio, and a check that the two agree on the counts and MTBF.
#
#   scripts/bench_analyze.sh                    # 10 M rows; nodekeeper 3 runs, pandas 1
#   scripts/bench_analyze.sh --rows 1000000     # a smaller log
#   scripts/bench_analyze.sh --runs 5 --pandas-runs 3 --json bench-analyze.json
#
# Installs pandas into the project venv, builds target/release/nodekeeper, and generates the log
# once into target/bench-data/ (kept between runs, never committed). Goal: <= 2 s, >= 5x pandas.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rows=10000000
bench_args=()
while (($#)); do
    case "$1" in
        -h | --help)
            sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        --rows)
            rows="${2:?--rows needs a number}"
            shift 2
            ;;
        *)
            bench_args+=("$1")
            shift
            ;;
    esac
done
[[ "$rows" =~ ^[0-9]+$ ]] || die "--rows: not a number: $rows"

ensure_venv pandas

step "cargo build --release --bin nodekeeper"
(cd "$ROOT" && cargo build --release --bin nodekeeper)

data_dir="$ROOT/target/bench-data"
log="$data_dir/restarts-$rows.csv"
if [[ ! -s "$log" ]]; then
    step "generating $log (once; about 10 s per million rows)"
    mkdir -p "$data_dir"
    "$VENV/bin/python" "$ROOT/benches/analyze/generate.py" "$log.tmp" --rows "$rows"
    mv "$log.tmp" "$log"
fi

step "nodekeeper log analyze vs pandas"
exec "$VENV/bin/python" "$ROOT/benches/analyze/bench.py" \
    --log "$log" --nodekeeper "$ROOT/target/release/nodekeeper" "${bench_args[@]}"
