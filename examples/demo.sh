#!/usr/bin/env bash
# The main job on bundled example data, end to end on CPU (a few minutes on 2 cores):
#  1. convert + inspect + run a bundled MatConvNet model, compared with MatConvNet's outputs;
#  2. write a small synthetic video dataset in the UCF101 layout (frames + TV-L1-style flow);
#  3. train an RGB and a flow stream (demo nets), fuse and train them with the paper's recipe;
#  4. evaluate the fused net with the paper's protocol on test split 1.
# Usage: bash examples/demo.sh [OUTDIR]   (default: ./demo)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-demo}"
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "1. convert, inspect and run a MatConvNet model (fixtures/reference/dagnn_misc_a.mat)"
matconv-port convert fixtures/reference/dagnn_misc_a.mat -o "$OUT/dagnn_misc_a.pt"
matconv-port inspect "$OUT/dagnn_misc_a.pt"
python examples/run_fixture_model.py fixtures/reference/dagnn_misc_a.mat "$OUT/dagnn_misc_a.pt"

step "1b. the paper's fused two-stream net as the original MatConvNet code saved it (narrow VGG-16 towers)"
matconv-port inspect fixtures/reference/fusion_twostream_vgg16narrow_a.mat | tail -12

step "2. synthetic dataset (class = direction of motion)"
matconv-port prepare --synthetic "$OUT/data"

step "3. train the two streams and the fused net (CPU)"
matconv-port train rgb --arch demo --data-root "$OUT/data" --split 1 --out "$OUT/runs/rgb" --device cpu --no-final-eval
matconv-port train flow --arch demo --data-root "$OUT/data" --split 1 --out "$OUT/runs/flow" --device cpu --no-final-eval
matconv-port train fusion --rgb "$OUT/runs/rgb/net-final.pt" --flow "$OUT/runs/flow/net-final.pt" \
    --data-root "$OUT/data" --split 1 --out "$OUT/runs/fusion" --device cpu --no-final-eval

step "4. evaluate the fused net with the paper's protocol (fusion-paper), split 1"
matconv-port eval --split 1 --model "$OUT/runs/fusion/net-final.pt" --data-root "$OUT/data" --out "$OUT/eval" --device cpu
python -c "import json,sys; s=json.load(open(sys.argv[1])); print('top-1 %.3f  top-5 %.3f  mean class accuracy %.3f  (%d videos)' % (s['top1'], s['top5'], s['mean_class_accuracy'], s['num_videos']))" "$OUT/eval/summary.json"
