#!/usr/bin/env bash
# The checks that need a GPU, as one short call on a machine with CUDA: the `--cuda` tests
# (tests/test_cuda.py; skipped elsewhere), then one full-size SMAC run on the GPU for Table 7's
# wall time. Logs go to OUT_DIR; benchmarks/results/gpu.md reports them (logs under results/gpu/).
#   bash benchmarks/gpu.sh OUT_DIR    (after `pip install -r requirements.txt`, torch aside: a CUDA build)
set -o pipefail
out=${1:?usage: bash benchmarks/gpu.sh OUT_DIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import os, torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cpus', os.cpu_count())"; } | tee "$out/machine.txt"
timeout 240 python3 -m pytest tests/test_cuda.py -q -rs --durations=0 -p no:cacheprovider 2>&1 | tee "$out/test_cuda.log"
start=$(date +%s)
timeout 90 python3 -m envs.smac_data --map 2s3z --dataset medium 2>&1 | tail -2 | tee "$out/dataset.log"
echo "dataset: $(( $(date +%s) - start )) s" | tee -a "$out/dataset.log"
# tqdm's carriage returns become lines, so the log keeps the iteration rate even if the run is cut short
timeout 200 python3 inspo_smac.py --map 2s3z --dataset medium --cuda --runs-dir /tmp/gpu_runs 2>&1 | tr '\r' '\n' > "$out/smac_gpu.log"
grep -v "it/s]$\|s/it]$" "$out/smac_gpu.log" | tail -4
grep "it/s]$\|s/it]$" "$out/smac_gpu.log" | tail -1
summary=$(grep "^summary: " "$out/smac_gpu.log" | cut -c10-)
[ -n "$summary" ] && cp "$summary" "$out/smac_gpu_summary.json"
exit 0
