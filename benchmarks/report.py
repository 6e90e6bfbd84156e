"""Regenerate BENCHMARKS.md (and benchmarks/benchmarks.png) from benchmarks/results/.

    python benchmarks/report.py [--results benchmarks/results] [--out BENCHMARKS.md] [--png benchmarks/benchmarks.png]

Per dataset: every model's mean over series of F1 (best anomaly ratio, TAB's label mode), the F1 at the label-free
threshold, AUROC, AUPR, VUS-ROC, VUS-PR, next to TAB's published rows (docs/evaluation.md §5, benchmarks/published.py).
Then the speed/memory tables of benchmarks/results/speed/*.json and any failed runs. Only the header below is
hand-written; everything else comes from the result files.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import published  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "BENCHMARKS.md"
PNG = ROOT / "benchmarks" / "benchmarks.png"
DATASET_ORDER = ("msl", "asd", "skab", "smd", "daphnet")
MODEL_ORDER = ("aster", "kmeans", "hbos", "iforest", "knn", "pca", "lof", "cblof")
# The paper's ablations of the old default (2026-11, one seed), as benchmarks/run.py tags, and their paper names.
ABLATIONS = (("old-aster-no-lm", "no_lm", "adapter only (no LM)"), ("old-aster-frozen", "frozen", "frozen LM"),
             ("old-aster-full", "full", "full fine-tuning"), ("old-aster", "lora", "LoRA (default)"),
             ("old-aster-mlp", "mlp", "MLP classifier"))
# Each kept choice of ours switched off against the default (benchmarks/run.py --variant NAME or --set ... --seeds ...).
# Six generations of defaults: `aster` (pseudo_random 1, sizes 0.25-2 sd, size ranking, 1500 steps, cosine decay,
# geometric step mean, stride-1 scoring), `aster-arith` (the same weights, arithmetic step mean, stride 10),
# `aster-norank` (the same without the size-ranking term), `aster-size5` (no ranking, sizes from 0.05 sd),
# `aster-random-half` (pseudo_random 0.5, 600 steps, constant lr) and `prev-aster` (pseudo_random 0, 600 steps,
# constant lr); each row says which one it switches a choice off ("no ranking": off `aster-norank`).
OUR_ABLATIONS = (("aster", "the default (random directions, sizes 0.25-2 sd, size ranking, 1500 steps, cosine decay, "
                           "geometric step mean, stride-1 scoring)"),
                 ("aster-st10", "scoring windows every 10 steps (evaluate.score_stride 10; the same trained weights)"),
                 ("aster-arith", "scoring every 10 steps and a step's score = the arithmetic mean of its covering "
                                 "windows' scores (the same trained weights): the default until 2026-12-07, seventh "
                                 "session"),
                 ("aster-halfrange", "scoring every 10 steps, few-valued channels scaled by at least half their range "
                                     "(prepare.few_valued_scale: half_range)"),
                 ("aster-token", "per-step scores from token scores (score_level: token; the same trained weights)"),
                 ("aster-steps3000", "3000 optimiser steps instead of 1500 (twice the training time)"),
                 ("aster-members3", "three members scored as the mean of their window scores (model.members 3; three "
                                    "times the training)"),
                 ("aster-rank2", "size-ranking term at twice the weight (rank_weight 2)"),
                 ("aster-d128", "features and C twice as wide (d_model 128)"),
                 ("aster-rank28", "ranking pairs at 2x and 8x the deviation, not 2x alone (probe, code not kept)"),
                 ("aster-logscale", "C's token logits plus w times the log of the scale its final LayerNorm divides "
                                    "out, w >= 0 learned (probe, code not kept)"),
                 ("aster-norank", "without the size-ranking term (rank_weight 0): the default until 2026-12-07, "
                                  "fifth session"),
                 ("aster-span06", "no ranking, spans up to 0.6 of the window (pseudo_span 0.6)"),
                 ("aster-span10", "no ranking, spans up to the whole window (pseudo_span 1)"),
                 ("aster-size25-4", "no ranking, sizes 0.25-4 sd"),
                 ("aster-size25-32", "no ranking, sizes 0.25-32 sd"),
                 ("aster-wd05", "no ranking, AdamW weight decay 0.05"),
                 ("aster-b128", "no ranking, batches of 128 windows (twice the work per step)"),
                 ("aster-shared1", "no ranking, one random direction per span, not per token (probe, code not "
                                   "kept)"),
                 ("aster-shaped1", "no ranking, random directions with the features' covariance (probe, code not "
                                   "kept)"),
                 ("aster-st500", "no ranking, 500 steps (would-be members of a 3-model ensemble at equal cost)"),
                 ("aster-size5", "no ranking, sizes from 0.05 sd (pseudo_size [0.05, 2]): the default until "
                                 "2026-12-07, fourth session"),
                 ("aster-size10", "no ranking, sizes from 0.1 sd"),
                 ("aster-size50", "no ranking, sizes from 0.5 sd"),
                 ("aster-size25-ep30", "no ranking, at most 30 passes over a series (a cap tried and removed)"),
                 ("aster-ep10", "sizes from 0.05 sd, at most 10 passes over a series"),
                 ("aster-ep20", "sizes from 0.05 sd, at most 20 passes over a series"),
                 ("aster-ep30", "sizes from 0.05 sd, at most 30 passes over a series"),
                 ("aster-ep60", "sizes from 0.05 sd, at most 60 passes over a series"),
                 ("aster-steps1500", "sizes from 0.05 sd, constant lr instead of cosine decay"),
                 ("aster-cos", "sizes from 0.05 sd, 600 steps instead of 1500"),
                 ("aster-steps600", "sizes from 0.05 sd, 600 steps at a constant lr (the budget before)"),
                 ("aster-steps1500-span1", "sizes from 0.05 sd, pseudo_span 1 (spans up to the whole window)"),
                 ("aster-span1", "sizes from 0.05 sd, 600 steps, constant lr, pseudo_span 1"),
                 ("aster-random-all", "sizes from 0.05 sd, 600 steps, constant lr, P still run (the random stream differs)"),
                 ("aster-ra-flr0", "as aster-random-all, F kept at its init (extractor_lr 0)"),
                 ("aster-ra-span1", "as aster-random-all, pseudo_span 1"),
                 ("aster-random-half", "pseudo_random 0.5, sizes from 0.05 sd, 600 steps, constant lr (the default before)"),
                 ("prev-aster", "pseudo_random 0 (G's directions only), 600 steps, constant lr: the G-only default"),
                 ("aster-paper-game", "G-only default, the paper's game at our patch and budget"),
                 ("aster-free", "G-only default, pseudo: free (H~ = G(z))"),
                 ("aster-target-window", "G-only default, target: window"),
                 ("aster-score-token", "G-only default, score_level: token"),
                 ("aster-f-lr1", "G-only default, extractor_lr: 1 (F at full speed)"),
                 ("aster-g-lr1", "G-only default, generator_lr: 1 (G at full speed)"),
                 ("aster-sgd", "G-only default, optimizer: sgd, lr 0.01"),
                 ("aster-minilm", "G-only default, backbone: minilm (2 layers, LoRA)"),
                 ("old-aster", "the default of 2026-11 (one seed)"))
SEED = re.compile(r"^(?P<base>.+)-s(?P<seed>\d+)$")
COLUMNS = (("f1", "F1"), ("f1_label_free", "F1 label-free"), ("auroc", "AUROC"), ("aupr", "AUPR"),
           ("vus_roc", "VUS-ROC"), ("vus_pr", "VUS-PR"))

HEADER = """\
# Benchmarks: ASTER next to the methods that win TAB

*Generated by `python benchmarks/report.py` from `benchmarks/results/`; edit the header in `benchmarks/report.py`,
not here.*

**What is compared.** Every model row below ran through the same harness, `benchmarks/run.py`, which calls the
pipeline's own stage functions (`pipeline/{ingest,validate,prepare,train,evaluate}.py`): the same loaders, the
chronological 80/20 fit/validation split of the train part, z-scoring fitted on the 80 % part only, one score per
test step, and TAB's metrics (docs/evaluation.md §3-4: F1 at the best of TAB's 10 anomaly ratios with pool = 80 % train
scores + test scores, AUROC, AUPR = average precision, TAB's 2022 VUS with buffers 0..2L). Metrics are averaged over
the series of a dataset, as TAB does. Reproduce a row with

    python benchmarks/run.py --datasets msl asd skab daphnet smd --models kmeans hbos iforest knn pca lof
    python benchmarks/run.py --datasets msl --models aster --seeds 2021 2022 2023   # ASTER, params.yaml defaults
    python benchmarks/run.py --datasets synthetic --models aster --variant free --seeds 2021 2022 2023  # ablation
    python benchmarks/report.py                                                 # this file

**Our baselines are our harness's numbers, not TAB's.** TAB feeds its tods (PCA, KNN, LOF, HBOS, CBLOF) and
merlion (IForest, ...) baselines raw, unscaled data and labels their F1 with the library's own contamination
threshold, and its KMeans scales on the whole train part; here every model sees the train-only-scaled arrays and the
same ratio grid. KNN and LOF are fitted on at most `model.baseline.max_train_rows` evenly strided train rows and
KMeans on at most that many windows (scored on all), see `aster/baselines.py`; where that subsampling applied, the
per-series `series_info` of the result JSON says so.

**Published rows** ("published (TAB PDF)") are transcribed from TAB's results PDF (docs/evaluation.md §5)
(`benchmarks/published.py`): the best value over all 58 methods per metric (with the method), and the GPT4TS (full),
TimesNet, KMeans and CATCH rows. They come from TAB's own runs (separate label- and score-mode runs, tuned per
method), so they are a reference point, not a same-harness comparison, and for SMD, Daphnet and SKAB the series or
split differ (see the note under each table).

**Reading the tables.** **Bold**: best among our runs in that column. ▲: our value beats TAB's published best for
that metric on a dataset whose series are the same as TAB's; △: it does, but the series or split differ (SKAB, SMD,
Daphnet: see the note under the table), so it says little. "F1 (r)": label-mode F1 with the
anomaly ratio r (%) chosen with test labels, as TAB does (an oracle); for several series, the median r and range.
Where r is the grid's largest value (25 %) for most series, F1 is capped by the grid (SKAB: with the first 400 rows as
train, a median 54 % of a file's test steps are anomalous).
"F1 label-free": F1 at the production threshold that `train` derives from validation scores only (the 0.99
quantile), i.e. what a deployment without labels gets. "s": wall seconds of train + evaluate on that machine.

**Known gaps (when this header was written).** PyOD's `pca` (default `weighted=True`, which divides by each
component's variance) returns non-finite scores where a channel is constant on the fit part (MSL, ASD, SMD), so
those runs fail; `pca-unweighted` is the same model with `weighted=False`, run on every dataset with
`--models pca --tag pca-unweighted --set 'model.baseline.params={weighted: false}'`. PyOD's CBLOF cannot split its
clusters into large/small on some SKAB files and fails there. Failed runs are listed at the end.

**Where ASTER stands (honest reading, 2026-12-07, seventh session of issue 10).** ASTER rows named `aster` use
`params.yaml` as committed: patch tokens of 10 steps, F = the linear adapter alone (`backbone: none`, the CPU budget),
anchored pseudo-anomalies that all deviate in a random direction (`pseudo_random: 1`; P is then not run) by a size
drawn log-uniformly between 0.25 and 2 standard deviations of the normal features (`pseudo_size`), a size-ranking term
in C's loss (`rank_weight: 1`), per-token targets with max pooling, per-step scores from window scores as the
geometric mean of the scores of the windows covering a step (`step_mean: geometric`) with a scoring window at every
step (`evaluate.score_stride: 1`), AdamW at 1e-3 (F at 0.1x) with cosine decay over 1500 optimiser steps per series on
stride-1 windows; seeds 2021, 2022 and 2023 (SYNTHETIC, SYNTHETIC-SHORT and DAPHNET also 2024 and 2025), mean ± std
over seeds (population std). The seventh session changed only how scores are mapped to steps; the trained weights are
those of the sixth session's default. Earlier defaults keep their rows: `aster-arith` (the same weights, arithmetic
mean of covering windows every 10 steps, the default until the seventh session), `aster-st10` (the same weights,
geometric mean, windows every 10 steps), `aster-norank` (no ranking term, the default until the fifth session),
`aster-size5` (no ranking, sizes from 0.05 sd), `aster-random-half` (`pseudo_random: 0.5`, 600 constant-lr steps),
`prev-aster` (`pseudo_random: 0`, G's directions only, 600 steps; the rows marked "G-only default" switch one choice
off that one) and `old-aster*` (the default of 2026-11: the paper's game, one token per step, MiniLM + LoRA, 5 SGD
epochs at stride 10; one seed). Development sets (the only ones defaults were chosen on): SYNTHETIC, SYNTHETIC-SHORT,
DAPHNET, ASD. MSL, SKAB and SMD are run with the chosen defaults as sets they were not tuned on.

- *How window scores become step scores (seventh session).* Two changes at inference only, chosen on the development
  sets by rescoring the same trained weights (`benchmarks/run.py --weights-from`, which refuses weights trained with
  other params): (1) a step's score is the geometric mean of the scores of the windows covering it (`model.step_mean:
  geometric`) instead of their arithmetic mean: the arithmetic mean lets one window that reaches into an anomaly lift
  every step it covers, the geometric mean needs all of them; (2) scoring windows start at every step
  (`evaluate.score_stride: 1`, the paper's setting and what serving's `/score_series` does by default) instead of
  every 10 steps. AUROC / VUS-PR, arithmetic at stride 10 (`aster-arith`) -> geometric at stride 10 (`aster-st10`) ->
  geometric at stride 1 (the default): ASD 0.858 / 0.332 -> 0.876 / 0.360 -> 0.895 ± 0.010 / 0.376 ± 0.015 (every seed
  up at each step), SYNTHETIC 0.981 / 0.903 -> 0.985 / 0.930 -> 0.988 ± 0.004 / 0.961 ± 0.016, DAPHNET 0.883 / 0.380
  -> 0.882 / 0.379 -> 0.881 ± 0.029 / 0.385, SYNTHETIC-SHORT 0.814 / 0.369 -> 0.808 / 0.369 -> 0.796 ± 0.075 / 0.401
  (seeds 2021-2023: std 0.038; the AUROC losses there are within its seed spread, VUS-PR rose on all four sets). Held
  out (not used to choose), in the same order: SMD 0.752 / 0.144 -> 0.765 / 0.174 -> 0.771 / 0.190, MSL 0.545 / 0.206
  -> 0.570 / 0.207 -> 0.580 / 0.209, SKAB 0.674 / 0.899 -> 0.673 / 0.899 -> 0.682 / 0.901. Evaluation at stride 1
  costs about 10x the scoring time (ASD: about 60 s a seed). Screened and not kept (same weights): per-step scores
  from token scores (`aster-token`: SYNTHETIC 0.921, SYNTHETIC-SHORT 0.694, DAPHNET 0.826, ASD 0.833); on the raw
  window logits (ad-hoc probe, stride 10): logits clipped to +-c (c 0.5-3) tie the normal steps (ASD 0.76-0.82),
  min(logit, c) (c 0, 2, 4) gives ASD 0.864-0.874 but DAPHNET 0.816-0.883 and SYNTHETIC-SHORT 0.634-0.791, and a soft
  maximum (tau log mean exp(logit / tau), tau 1-8) SYNTHETIC 0.847-0.914.
- *Few-valued channels (seventh session, an option, not the default).* `prepare.few_valued_scale: half_range` scales a
  channel with 2-5 distinct values on the fit part by at least half its range, so a rare switch of a command or flag
  counts about 2 sd instead of tens or hundreds (MSL: up to 216). On the development sets (stride 10, geometric mean,
  against `aster-st10`) it changes ASD (7 two-valued channels in 12 series) and SYNTHETIC-SHORT (its two-valued
  counter channel) only: ASD 0.887 ± 0.006 / 0.409 against 0.876 / 0.360, but SYNTHETIC-SHORT 0.686 ± 0.082 / 0.246
  against 0.808 / 0.369, because there the counter's rare switch is where anomalies show. Kept as an option for data
  whose flags are noise; not run on the held-out sets.
- *Twice the training (seventh session, not adopted).* 3000 steps instead of 1500, seeds 2021-2023, against the
  default on the same seeds: SYNTHETIC 0.992 / 0.971 against 0.989 / 0.960, DAPHNET 0.877 / 0.364 against 0.869 /
  0.354, SYNTHETIC-SHORT 0.779 / 0.453 against 0.798 / 0.375. Mixed, at twice the time, and not run on ASD. A
  window-level ensemble (the mean of the members' window scores, then the geometric step mean) scores as the
  step-level one (ad-hoc probe, seeds 2021-2023: SYNTHETIC-SHORT 0.882, ASD 0.886, DAPHNET 0.872, SYNTHETIC 0.988), so
  an ensemble can be one exported graph.
- *C ranks deviations by their size (fifth session).* Without the ranking term DAPHNET's seeds scored 0.867, 0.765,
  0.881, 0.829, 0.867 while a kNN on F's own features reached 0.91-0.93 (`diagnose.py`). Per 1000-step segment of
  the test, the weak seed (2022) scored normal windows after step 26,000 at 0.84-0.92 where seed 2023 scored them
  at 0.01-0.08. Those windows, like most of the test, lie 24 to 145 times farther from the nearest training window
  in F than validation windows do: far beyond the largest pseudo-anomaly C was trained on, where binary targets
  leave C's score to the seed. The fix: C must also score each pseudo-anomaly below the same deviation at twice its
  size (a RankNet term, `softplus(C(H~) - C(H + 2 (H~ - H)))`, added to the pseudo-anomaly loss), so its scores grow
  with how far a window strays. AUROC / VUS-PR against the same default without the term: DAPHNET 0.883 ± 0.024 /
  0.380 ± 0.062 against 0.842 ± 0.042 / 0.284 ± 0.055 (5 seeds; the weak seed 0.848), SYNTHETIC-SHORT 0.814 ±
  0.078 / 0.369 against 0.764 ± 0.045 / 0.227, SYNTHETIC 0.981 ± 0.006 / 0.903 against 0.979 ± 0.011 / 0.893 (5
  seeds each), ASD 0.858 ± 0.011 / 0.332 ± 0.015 against 0.837 ± 0.014 / 0.324 ± 0.018 (3 seeds). Training takes
  about 1.3x as long (C sees three batches a step instead of two).
- *Negative screens of the fifth session* (no ranking term, 5 seeds unless said; AUROC SYNTHETIC-SHORT / SYNTHETIC /
  DAPHNET against 0.764 / 0.979 / 0.842): AdamW weight decay 0.05 0.761 / 0.978; sizes 0.25-4 sd 0.756 / 0.975;
  sizes 0.25-32 sd 0.729 (4 seeds) / - / 0.845, so a wider range is not what the ranking term buys; spans up to 0.6
  of the window 0.774 / 0.980 / 0.847; spans up to the whole window: DAPHNET 0.818 (2 seeds); batches of 128 0.755
  (4 seeds); one random direction per span instead of per token 0.758 / 0.958 (2 seeds) / 0.837; directions drawn
  with the features' covariance 0.628 (3 seeds) / - / 0.758 ± 0.129 (the last two were probes whose code was not
  kept). 500 steps instead of 1500 (members of a 3-model ensemble at the same cost): 0.669 / - / 0.764, too weak
  for an ensemble of them to catch up.
- *Held out (not tuned on), with the ranking term against without* (both with the arithmetic step mean of the sixth
  session; the geometric mean's figures are in the first bullet and the tables), seeds 2021-2023. SKAB 0.674 ± 0.035 /
  0.899 ± 0.008 against 0.556 ± 0.040 / 0.873 ± 0.014; F1 0.538, AUPR 0.726, VUS-ROC 0.874: above TAB's GPT4TS and
  TimesNet in every column (AUROC 0.567 / 0.620); our KMeans 0.828 / 0.929. SMD 0.752 ± 0.010 / 0.144 ± 0.005 against
  0.782 ± 0.040 / 0.154 ± 0.018, a loss; F1 0.249, AUPR 0.168, VUS-ROC 0.711: above GPT4TS in F1, AUROC, AUPR and
  VUS-PR and level in VUS-ROC (0.711), above TimesNet only in F1 (TimesNet 0.164 / 0.766 / 0.175 / 0.782 / 0.167); our
  KMeans 0.903 / 0.333. MSL 0.545 ± 0.015 / 0.206 ± 0.008 against 0.527 ± 0.015 / 0.194 (TAB's best 0.684 / 0.261).
- *Why SMD lost with the ranking term (sixth session; a diagnosis on a held-out set, used to choose nothing).* On
  SMD-machine-3-4 the test lies 170-290 sd from the training part in its scaled channels from step ~2,000 on (a
  level shift; the labels call it anomalous until step ~4,000 and normal after). C scores all of it 0.999, so the
  labelled part cannot stand out: AUROC 0.39 for seed 2021, where the largest |x| of a step alone gives 0.92. Along
  random rays out of the normal features, C's logit rises from -4.6 to +20 at 4 spreads and falls back to +6 at 1024
  spreads: after C's final LayerNorm the head sees only the direction of a far token, not how far it is.
- *Sixth-session screens that did not pay* (AUROC / VUS-PR, 5 seeds, ASD 3, unless said; the default: SYNTHETIC
  0.981 / 0.903, SYNTHETIC-SHORT 0.814 / 0.369, DAPHNET 0.883 / 0.380, ASD 0.858 / 0.332).
  - Giving C the scale back, learned (token logit + w * log of the scale the final LayerNorm divides out, w >= 0
    learned; code not kept): SYNTHETIC 0.981 / 0.899, SYNTHETIC-SHORT 0.780 / 0.353, DAPHNET 0.882 / 0.387.
  - The same term only beyond the largest scale of the normal training tokens, added at inference to the trained
    default models (ad-hoc probe): DAPHNET within 0.001 on all 5 seeds, ASD seed 2021 0.844 -> 0.844.
  - How window scores become step scores (ad-hoc probe on the trained default models, served float32 scores):
    the mean of logits instead of probabilities gives ASD 0.873 ± 0.012 / 0.338, DAPHNET 0.891 / 0.385,
    SYNTHETIC-SHORT 0.816 / 0.386, but SYNTHETIC 0.942 / 0.598; the max over covering windows ASD 0.836, DAPHNET
    0.879, SYNTHETIC-SHORT 0.790, SYNTHETIC 0.827 / 0.269; one minus the geometric mean of (1 - score) SYNTHETIC
    0.912 / 0.481, ASD 0.854. (The seventh session found the geometric mean, above.)
  - Twice the width (`d_model: 128`; F's adapter maps ASD's 190 numbers of a 10-step patch to 64, a suspected
    bottleneck): ASD seed 2021 0.815 / 0.310 against the default's 0.844 / 0.312, at twice the training time.
  - The ranking term at twice the weight (`rank_weight: 2`): SYNTHETIC 0.983 / 0.914, DAPHNET 0.887 ± 0.013 /
    0.397, SYNTHETIC-SHORT 0.806 ± 0.096 / 0.436 (seed std over 2021-2023 0.084, above the bar of 0.05), ASD
    0.855 ± 0.012 / 0.327. Not adopted: no better on ASD, and the seed spread on SYNTHETIC-SHORT.
  - Ranking pairs at 2x and 8x the deviation instead of 2x alone, so that C's rise reaches further out (probe,
    code not kept): SYNTHETIC-SHORT 0.594 ± 0.048 / 0.168, DAPHNET 0.875 ± 0.024 / 0.366. Far worse on the
    short set.
- *MSL's scaling (sixth session, what the data shows).* 32 of MSL's 54 command channels take two values in the
  training part (22 are constant there), mostly 0, so z-scoring turns a rare 1 into up to 216 sd; the telemetry
  channel reaches 279 sd in the test (4.6 in training). C sees rare training commands as far-out points. A scale
  floor for few-valued channels is the next lever; it changes the input of every model, so the baselines must be
  re-run with it.
- *Sizes (previous session).* With sizes from 0.05 sd, SKAB (held out) had fallen to chance. SYNTHETIC-SHORT, the
  generator with a SKAB-like short training part (1000 rows, one mode, 8 channels, window 64; KMeans, KNN and LOF
  at chance on it), showed why: sizes from 0.05 / 0.1 / 0.25 / 0.5 sd scored 0.567 / 0.590 / 0.764 / 0.793 (5
  seeds each; 0.5 cost SYNTHETIC, 0.946), so the floor is 0.25. A cap on the passes over a short series helped
  less and hurt on top of the floor, and was removed.
- *An ensemble over seeds (a probe, not in the product).* `benchmarks/diagnose.py` with several seeds also scores
  the mean of their per-step scores: SYNTHETIC-SHORT 0.824 / 0.224 (the 5 members without ranking: 0.764 on
  average). It multiplies training time by the number of members. Seventh session, the default's seeds 2021-2023
  (geometric step mean, stride 10; ad-hoc probe, arithmetic mean of the members' per-step scores): SYNTHETIC-SHORT
  0.881 against members averaging 0.811 (0.867 / 0.790 / 0.778), ASD 0.885 against 0.876, DAPHNET 0.870 against
  0.869, SYNTHETIC 0.988 against 0.987: the short training part is where seeds disagree and an ensemble pays. Five
  members (2021-2025): SYNTHETIC-SHORT 0.886 against 0.808, DAPHNET 0.882 against 0.882, SYNTHETIC 0.987 against
  0.985. Then as the option `model.members: 3` (aster/ensemble.py: members trained with seeds seed, seed + 1,
  seed + 2 from one seeded initialisation, so not the same models as the probe's), 5 seeds against the default's 5:
  SYNTHETIC-SHORT 0.789 ± 0.060 / 0.419 against 0.796 ± 0.075 / 0.401, DAPHNET 0.893 ± 0.015 / 0.401 against 0.881 ±
  0.029 / 0.385 (half the seed spread), SYNTHETIC (seed 2021) 0.990 / 0.969 against 0.990 / 0.968. On SYNTHETIC-SHORT seed 2021 the
  three members scored 0.867 / 0.599 / 0.733 alone (stride 10) and 0.815 together: the ensemble beats its average
  member, but members vary so much there that five seeds of ensembles do not show a gain. Not adopted: three
  times the training for +0.012 on DAPHNET and nothing on SYNTHETIC-SHORT, and not run on ASD.
- *Where the pseudo-anomalies point.* With G's directions only, on DAPHNET a plain kNN on F's own features reached
  AUROC 0.895 / 0.906 / 0.911 for the three seeds while C scored 0.818 / 0.590 / 0.561 (`diagnose.py`): the
  signal was in F and lost in C's boundary, which enclosed the normal features only where G had pushed. At 600
  constant-lr steps, AUROC with G's directions only / half random / all random: SYNTHETIC 0.809 / 0.945 / 0.969,
  DAPHNET 0.657 / 0.811 / 0.873, ASD 0.763 / 0.804 / 0.835. Every development set says G's directions cost
  accuracy, so the default draws every direction at random and does not run P (a step then costs about a third).
- *How long and how C is left at the end* (sizes from 0.05 sd). With a constant learning rate the score depends on
  where the last steps left C: SYNTHETIC over 5 seeds gave 0.926 ± 0.058 at 600 steps and 0.937 ± 0.031 at 1500; a
  cosine decay to 0 over 1500 steps 0.979 ± 0.005; cosine over 600 steps was as good on SYNTHETIC but not on
  DAPHNET (0.795 ± 0.034). Negative results of the same screens: spans up to the whole window (`pseudo_span: 1`) and
  F kept at its init (`extractor_lr: 0`) did not help (tables below).
- *Against the bars of the issue (seventh session).* SYNTHETIC 0.988 / 0.961 against LOF 0.855 / 0.532 (met). ASD
  0.895 ± 0.010 / 0.376 ± 0.015 against KMeans 0.859 / 0.310 (met). DAPHNET 0.881 ± 0.029 / 0.385 (KMeans 0.924 /
  0.519). SKAB (held out): F1 0.546, AUROC 0.682, AUPR 0.728, VUS-ROC 0.878, VUS-PR 0.901, above GPT4TS and TimesNet
  in every column (met); our KMeans 0.828 / 0.929. SMD (held out): F1 0.306, AUROC 0.771, AUPR 0.217, VUS-ROC 0.735,
  VUS-PR 0.190: above GPT4TS in every column and above TimesNet (0.164 / 0.766 / 0.175 / 0.782 / 0.167) in all but
  VUS-ROC (not met); our KMeans 0.903 / 0.333. MSL (held out) 0.580 / 0.209 against TAB's best 0.684 / 0.261 (not
  met).
- *Earlier findings (G-only default)*: the paper's game collapses here (acc 1/1, `grl_grad` 0) while the anchored
  game stays open; anchored pseudo-anomalies, per-token targets and a slow G each paid on SYNTHETIC (ablation
  table); per-step scores from window scores beat token scores on SYNTHETIC and MSL; an exponential moving average
  of the weights (decay 0.99) did worse (0.693 ± 0.07 against 0.809, SYNTHETIC-EXPLORATION); patch tokens and the
  step budget made training 50x (the default with the ranking term, 2026-12-07) and onnxruntime scoring 96x the
  throughput of the 2026-11 default (Speed).
"""


def fmt(v, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def load_results(results: Path) -> tuple[dict[str, dict[str, dict]], list[dict]]:
    """({dataset: {tag: result}}, failed runs) from results/<dataset>/<tag>.json (speed/ excluded); runs of one
    setting with several seeds (tags `<base>-s<seed>`) become one result `<base>` with mean and std over seeds."""
    runs, failed = {}, []
    for d in sorted(p for p in results.iterdir() if p.is_dir() and p.name not in ("speed", "diagnostics")) if results.is_dir() else []:
        for f in sorted(d.glob("*.json")):
            doc = json.loads(f.read_text())
            if f.name.endswith(".failed.json"):
                if not (d / f.name.replace(".failed.json", ".json")).exists():
                    failed.append(doc)
            else:
                runs.setdefault(d.name, {})[doc.get("tag", f.stem)] = doc
    return {name: merge_seeds(tags) for name, tags in runs.items()}, failed


def merge_seeds(results: dict[str, dict]) -> dict[str, dict]:
    """Replace the `<base>-s<seed>` results of each base by one: mean over seeds in `mean`, std in `std`."""
    import numpy as np

    groups: dict[str, list[str]] = {}
    for tag in results:
        m = SEED.match(tag)
        if m:
            groups.setdefault(m["base"], []).append(tag)
    out = {t: r for t, r in results.items() if not SEED.match(t)}
    for base, tags in groups.items():
        docs = [results[t] for t in sorted(tags)]
        keys = [k for k in docs[0]["mean"] if all(isinstance(d["mean"].get(k), (int, float)) for d in docs)]
        vals = {k: np.array([d["mean"][k] if d["mean"][k] is not None else np.nan for d in docs], float)
                for k in keys}
        merged = dict(docs[0])
        merged.update(tag=base, seeds=[SEED.match(t)["seed"] for t in sorted(tags)],
                      mean={k: float(np.nanmean(v)) for k, v in vals.items()},
                      std={k: float(np.nanstd(v)) for k, v in vals.items()} if len(docs) > 1 else {},
                      series=docs[0]["series"])
        merged["run"] = dict(docs[0].get("run", {}))
        merged["run"]["seconds"] = {k: float(np.mean([d["run"]["seconds"].get(k) or 0 for d in docs]))
                                    for k in docs[0].get("run", {}).get("seconds", {})}
        out[base if base not in out else f"{base} (seeds)"] = merged
    return out


def cell_value(r: dict, key: str) -> str:
    """"0.712" or, for a merged multi-seed result, "0.712 ± 0.110"."""
    v, sd = r["mean"].get(key), (r.get("std") or {}).get(key)
    return fmt(v) + (f" ± {sd:.3f}" if sd is not None and not math.isnan(sd) else "")


def _order(names, preferred) -> list[str]:
    rank = {n: i for i, n in enumerate(preferred)}
    return sorted(names, key=lambda n: (rank.get(n.split("-")[0], len(rank)), n))


def ratio_cell(result: dict) -> str:
    import numpy as np

    ratios = sorted(s["f1_ratio"] for s in result["series"].values() if s.get("f1_ratio") is not None)
    if not ratios:
        return ""
    if len(ratios) == 1 or ratios[0] == ratios[-1]:
        return f" (r {ratios[0]:g}{' in all' if len(ratios) > 1 else ''})"
    mid = float(np.median(ratios))
    return f" (r {mid:g}, {ratios[0]:g}–{ratios[-1]:g})"


def subsampled(result: dict) -> int:
    return sum(bool(i.get("subsampled")) for i in result.get("run", {}).get("series_info", {}).values())


def dataset_table(name: str, results: dict[str, dict]) -> list[str]:
    tags = _order(results, MODEL_ORDER)
    first = results[tags[0]]
    lines = [f"## {name.upper()}", ""]
    n_series = first.get("n_series", len(first.get("series", {})))
    window = first.get("run", {}).get("params", {}).get("window")
    note = first.get("run", {}).get("note")
    lines.append(f"{n_series} series, window {window}" + (f"; {note}." if note else "."))
    shared = {k: max(r.get("run", {}).get("seconds", {}).get(k) or 0 for r in results.values())
              for k in ("ingest", "validate", "prepare")}
    if any(shared.values()):
        lines.append("Shared stages, once per dataset: " + ", ".join(f"{k} {v:.1f} s" for k, v in shared.items())
                     + " (wall).")
    lines += ["", "| model | " + " | ".join(c for _, c in COLUMNS) + " | s |",
              "|---|" + "---:|" * (len(COLUMNS) + 1)]
    best_ours = {}
    for key, _ in COLUMNS:
        values = [r["mean"].get(key) for r in results.values()]
        values = [v for v in values if v is not None and not math.isnan(v)]
        best_ours[key] = max(values) if values else None
    for tag in tags:
        r = results[tag]
        cells = []
        for key, _ in COLUMNS:
            v = r["mean"].get(key)
            cell = cell_value(r, key)
            if v is not None and best_ours[key] is not None and v == best_ours[key] and len(tags) > 1:
                cell = f"**{cell}**"
            pub = published.best(name, key)
            if pub and v is not None and not math.isnan(v) and round(v, 3) > pub[0]:
                cell += " ▲" if published.COMPARABILITY[name][0] else " △"
            if key == "f1":
                cell += ratio_cell(r)
            cells.append(cell)
        seconds = r.get("run", {}).get("seconds", {})
        wall = (seconds.get("train") or 0) + (seconds.get("evaluate") or 0)
        label = tag + (f" ({subsampled(r)} subsampled)" if subsampled(r) else "") + (
            f" ({len(r['seeds'])} seeds)" if len(r.get("seeds") or []) > 1 else
            f" (seed {r['seeds'][0]})" if r.get("seeds") else "")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {wall:.0f} |")
    if name in published.BEST:
        cells = []
        for key, _ in COLUMNS:
            pub = published.best(name, key)
            cells.append(f"{pub[0]:.3f} ({pub[1]})" if pub else "–")
        lines.append("| *published (TAB PDF): best of 58* | " + " | ".join(cells) + " | |")
        for method, row in published.rows(name).items():
            cells = [fmt(row.get(key)) if key in row else "–" for key, _ in COLUMNS]
            lines.append(f"| *published (TAB PDF): {method}* | " + " | ".join(cells) + " | |")
        comparable, why = published.COMPARABILITY[name]
        lines += ["", ("Published numbers **comparable** (same series): " if comparable else
                       "Published numbers **not comparable**: ") + why + "."]
    machines = {(r.get("run", {}).get("machine", {}).get("cpu_model"), r.get("run", {}).get("machine", {})
                 .get("usable_cpus")) for r in results.values()}
    lines += ["", "Runs on: " + "; ".join(f"{m} ({c} cores)" for m, c in sorted(machines, key=str)) + "."]
    return lines + [""]


def ablation_table(name: str, results: dict[str, dict]) -> list[str]:
    """The paper's ablations run on one dataset, next to the paper's own ablation numbers (other datasets)."""
    present = [a for a in ABLATIONS if a[0] in results]
    if len(present) < 2:
        return []
    paper_sets = sorted({d for v in published.PAPER_ABLATIONS.values() for d in v})
    lines = [f"### Ablations on {name.upper()}", "",
             "Each row differs from the default run only by its overrides (same seed, data and harness). The "
             f"paper's columns are its own ablations (GPT-2) on {' and '.join(paper_sets)}, datasets we do not have: "
             "compare the ordering, not the values.", "",
             "| variant | tag (overrides) | F1 | AUROC | AUPR | VUS-ROC | VUS-PR | "
             + " | ".join(f"paper {d} F1 / AUROC / AUPR" for d in paper_sets) + " |",
             "|---|---|" + "---:|" * (len(published.METRICS) + len(paper_sets))]
    for tag, variant, label in present:
        r = results[tag]
        overrides = " ".join(r.get("run", {}).get("overrides", [])) or "defaults"
        paper = [" / ".join(f"{v:.3f}" for v in published.PAPER_ABLATIONS[variant][d]) for d in paper_sets]
        lines.append(f"| {label} | {tag} ({overrides}) | " + " | ".join(fmt(r["mean"].get(k)) for k in published.METRICS)
                     + " | " + " | ".join(paper) + " |")
    return lines + [""]


def our_ablation_table(name: str, results: dict[str, dict]) -> list[str]:
    """Each kept choice of ours switched off against the default (mean ± std over seeds where there are several)."""
    present = [a for a in OUR_ABLATIONS if a[0] in results]
    if len(present) < 2:
        return []
    lines = [f"### What each choice of ours buys on {name.upper()}", "",
             "Each row switches one choice of the default off (`benchmarks/variants.yaml`), same data and harness.",
             "", "| variant | tag | seeds | " + " | ".join(c for k, c in COLUMNS if k != "f1_label_free") + " |",
             "|---|---|---|" + "---:|" * (len(COLUMNS) - 1)]
    for tag, label in present:
        r = results[tag]
        lines.append(f"| {label} | {tag} | {', '.join(r.get('seeds') or [str(r['run']['params']['train']['seed'])])}"
                     " | " + " | ".join(cell_value(r, k) for k, _ in COLUMNS if k != "f1_label_free") + " |")
    return lines + [""]


def chart(runs: dict[str, dict[str, dict]], path: Path) -> Path | None:
    """Grouped bars: VUS-PR and AUROC per dataset (groups) per model (bars); a black tick = TAB's published best."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    datasets = _order(runs, DATASET_ORDER)
    if not datasets:
        return None
    tags = _order({t for d in datasets for t in runs[d]}, MODEL_ORDER)
    colors = plt.get_cmap("tab20")  # one colour per tag up to 20 tags
    fig, axes = plt.subplots(2, 1, figsize=(max(7, 1.6 * len(datasets) * max(1, len(tags)) / 4), 7), sharex=True)
    width = 0.8 / len(tags)
    x = np.arange(len(datasets))
    for ax, (key, label) in zip(axes, (("vus_pr", "VUS-PR"), ("auroc", "AUROC"))):
        for i, tag in enumerate(tags):
            vals = [runs[d][tag]["mean"].get(key, np.nan) if tag in runs[d] else np.nan for d in datasets]
            ax.bar(x - 0.4 + width * (i + 0.5), vals, width, label=tag, color=colors(i % 20))
        for j, d in enumerate(datasets):
            pub = published.best(d, key)
            if pub:
                ax.hlines(pub[0], x[j] - 0.42, x[j] + 0.42, colors="black", linewidth=2,
                          label="TAB published best" if j == 0 else None)
        ax.set_ylabel(label)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(ncol=min(5, len(tags) + 1), fontsize=8, loc="upper right")
    axes[1].set_xticks(x, [d.upper() for d in datasets])
    axes[0].set_title("Mean over series; black line: TAB's published best (not comparable for SMD/Daphnet/SKAB)",
                      fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def speed_section(speed_dir: Path) -> list[str]:
    files = sorted(f for f in speed_dir.glob("*.json") if not f.name.endswith(".smoke.json")) \
        if speed_dir.is_dir() else []
    lines = ["## Speed and memory", ""]
    if not files:
        return lines + ["No speed results yet (`benchmarks/bench_*.py` write them to `benchmarks/results/speed/`).",
                        ""]
    for f in files:
        doc = json.loads(f.read_text())
        if "headers" not in doc or "rows" not in doc:  # another script's format: point at it
            lines += [f"### {f.stem}", "", f"`{f.relative_to(ROOT) if f.is_relative_to(ROOT) else f}` "
                      "(not in the table format of benchmarks/common.py).", ""]
            continue
        m = doc.get("machine", {})
        where = f"{m.get('cpu_model', '?')}, {m.get('usable_cpus', '?')} cores"
        if m.get("torch_threads") is not None:
            where += f", torch threads {m['torch_threads']}"
        if m.get("cuda"):
            where += f", CUDA {m['cuda']}"
        if m.get("load_average_1m") is not None:
            where += f", load average {m['load_average_1m']} at the end (shared machine)"
        lines += [f"### {doc.get('title', f.stem)}", "", f"`{doc.get('command', '')}` — {where}, {m.get('date', '')}",
                  "", "| " + " | ".join(doc["headers"]) + " |", "|" + "---|" * len(doc["headers"])]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in doc["rows"]]
        lines += [""] + [f"- {n}" for n in doc.get("notes", [])] + [""]
    return lines


def render(results: Path, out: Path, png: Path) -> str:
    runs, failed = load_results(results)
    lines = [HEADER]
    img = chart(runs, png)
    if img is not None:
        rel = os.path.relpath(img, out.parent)
        lines += [f"![VUS-PR and AUROC per dataset and model]({rel})", ""]
    if not runs:
        lines += ["No results yet: run `benchmarks/run.py`.", ""]
    for name in _order(runs, DATASET_ORDER):
        lines += dataset_table(name, runs[name]) + our_ablation_table(name, runs[name]) + ablation_table(name,
                                                                                                      runs[name])
    lines += speed_section(results / "speed")
    if failed:
        lines += ["## Failed runs", ""] + [f"- {f['dataset']} / {f['tag']}: {f['error']}" for f in failed] + [""]
    text = "\n".join(lines).rstrip() + "\n"
    out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--png", type=Path, default=PNG)
    args = parser.parse_args(argv)
    render(args.results, args.out, args.png)
    print(f"wrote {args.out} and {args.png}")


if __name__ == "__main__":
    main()
