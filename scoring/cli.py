"""``python -m scoring``: check, score, rank, and manage weights, as the server does."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scoring.profile import ScoringProfile


def _score(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from scoring.archive import ArchiveLimits, check_and_extract, expected_from_inputs
    from scoring.batching import parse_images_per_call
    from scoring.inputs import InputSetError, check_landmarks_cover, read_landmarks, scan_inputs
    from scoring.profile import get_profile
    from scoring.report_csv import eval_csv_names, write_images_csv, write_total_csv
    from scoring.scorer import load_models, score_restored
    from scoring.weights import WeightsError

    try:
        profile = get_profile(args.profile)
    except KeyError as exc:
        return _fail(args, "bad_inputs", str(exc).strip("'\""))
    try:
        profile = with_metric_options(profile, args.metric_option)
    except ValueError as exc:
        return _fail(args, "bad_option", str(exc))
    try:
        images_per_call = parse_images_per_call(args.images_per_call)
    except ValueError as exc:
        return _fail(args, "bad_option", str(exc))
    try:
        inputs = scan_inputs(Path(args.inputs))
        landmarks = read_landmarks(Path(args.landmarks))
        check_landmarks_cover(inputs, landmarks)
    except (KeyError, InputSetError) as exc:
        return _fail(args, "bad_inputs", str(exc).strip("'\""))
    with tempfile.TemporaryDirectory(prefix="scoring-") as scratch:
        report = check_and_extract(Path(args.restored), expected_from_inputs(inputs), Path(scratch), ArchiveLimits())
        if not report.ok:
            if args.json:
                print(json.dumps(report.to_json(), indent=2))
            else:
                print(report.summary(), file=sys.stderr)
            return 1
        try:
            # pyiqa prints "Loading pretrained model ..." to stdout; keep stdout for the report (--json).
            with contextlib.redirect_stdout(sys.stderr):
                models = load_models(args.weights, profile, args.device)
        except (WeightsError, RuntimeError) as exc:
            return _fail(args, "weights", str(exc))
        bar = tqdm(total=len(inputs), desc="scoring", unit="img", disable=args.json or not sys.stderr.isatty())

        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        result = score_restored(inputs, landmarks, Path(scratch), profile, models, progress=progress,
                                images_per_call=images_per_call)
        bar.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    total_name, images_name = eval_csv_names(args.name)
    write_total_csv(out / total_name, result)
    write_images_csv(out / images_name, result)
    summary = {
        "ok": True,
        "profile": profile.name,
        "metric_options": profile.metric_options,
        "datasets": {d.dataset: {**d.metrics, "id_sim": d.id_similarity, "failed": d.failed_count}
                     for d in result.datasets},
        "all": {**result.overall, "id_sim": result.id_similarity},
        "terms": result.terms,
        "total": result.total,
        "failed_count": result.failed_count,
        "valid": result.valid,
        "max_failed_images": profile.max_failed_images,
        "weights": result.weights,
        "official_weights": result.official_weights,
        "versions": result.versions,
        "csv": [str(out / total_name), str(out / images_name)],
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"profile {profile.name}: total {result.total:.4f}, failed identity {result.failed_count}"
              f" ({'valid' if result.valid else 'NOT valid'}); wrote {out / total_name}")
        if not result.official_weights:
            print("note: these weights are not the official ones; the numbers are not comparable")
    return 0


def _option_value(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def with_metric_options(profile: ScoringProfile, options: list[str] | None) -> ScoringProfile:
    """``profile`` with ``--metric-option METRIC.KEY=VALUE`` overrides merged into its metric_options.

    The overrides become part of the profile, so the report's profile snapshot records them
    and the score can be reproduced. VALUE is read as an int, else a float, else a string.
    """
    if not options:
        return profile
    merged = {metric: dict(values) for metric, values in profile.metric_options.items()}
    for option in options:
        target, sep, raw = option.partition("=")
        metric, dot, key = target.partition(".")
        metric, key = metric.strip(), key.strip()
        if not sep or not dot or not metric or not key:
            raise ValueError(f"--metric-option {option!r}: expected METRIC.KEY=VALUE, e.g. maniqa.test_sample=2")
        if metric not in profile.iqa_metrics:
            raise ValueError(
                f"--metric-option {option!r}: profile {profile.name!r} has no IQA metric {metric!r}"
                f" (it has: {', '.join(profile.iqa_metrics) or 'none'})"
            )
        merged.setdefault(metric, {})[key] = _option_value(raw.strip())
    return dataclasses.replace(profile, metric_options=merged)


def _fail(args: argparse.Namespace, code: str, message: str) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "errors": [{"code": code, "path": "", "message": message}]}))
    else:
        print(f"error: {message}", file=sys.stderr)
    return 1


def _weights(args: argparse.Namespace) -> int:
    from scoring.weights import WeightsError, fetch_weights, verify_directory

    directory = Path(args.dir)
    try:
        if args.action == "fetch":
            fetched = fetch_weights(directory)
            print(f"fetched {len(fetched)} file(s) into {directory}")
            return 0
        if args.action == "make-test":
            from scoring.testweights import make_test_weights

            niqe = Path(args.niqe_params) if args.niqe_params else None
            files = make_test_weights(directory, niqe_params=niqe, progress=True)
            print(f"wrote {len(files)} test weight file(s) into {directory} (random init, fixed seed)")
            return 0
        rows = verify_directory(directory)
    except (WeightsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for row in rows:
        flag = "official" if row["official"] else ""
        print(f"{row['status']:8} {row['file']:42} {(row['sha256'] or '')[:16]:16} {flag}")
        if row.get("error"):
            print(f"         {row['error']}")
    return 0 if all(r["status"] in ("ok", "missing") for r in rows) else 1


def _landmarks(args: argparse.Namespace) -> int:
    """Locate the five landmarks of every input with RetinaFace and write them in ``val_face.csv``'s layout: what
    the organizers upload with an input set too large for the web form to run the detector on."""
    from scoring.inputs import InputSetError, scan_inputs, write_landmarks
    from scoring.landmarks import detect_landmarks
    from scoring.weights import WeightsError

    try:
        images = scan_inputs(Path(args.inputs))
        found, no_face = detect_landmarks(images, args.weights, args.device, conf_threshold=args.confidence)
    except (InputSetError, WeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    write_landmarks(Path(args.out), [found[i.stem] for i in images if i.stem in found])
    print(f"wrote the landmarks of {len(found)} of {len(images)} input(s) to {args.out}")
    if no_face:
        by_stem = {i.stem: i.relpath for i in images}
        print(f"no face found in {len(no_face)} input(s); add their rows by hand:", file=sys.stderr)
        for stem in no_face:
            print(f"  {by_stem[stem]}", file=sys.stderr)
        return 2
    return 0


def _profiles(args: argparse.Namespace) -> int:
    from scoring.profile import PRESETS, profiles_markdown

    if args.markdown:
        print(profiles_markdown(), end="")
        return 0
    for profile in PRESETS.values():
        print(f"{profile.name}: {profile.formula()}; thresholds {profile.identity_thresholds}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scoring", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="check an archive or folder against the input set")
    check.add_argument("--inputs", required=True, help="folder of <Dataset>/<stem>.png inputs")
    check.add_argument("source", help="the zip archive or folder of restored images")
    check.add_argument("--json", action="store_true")

    score = sub.add_parser("score", help="score restored images; writes eval.py's two CSV files")
    score.add_argument("--inputs", required=True)
    score.add_argument("--landmarks", required=True, help="CSV in the organizers' val_face.csv layout")
    score.add_argument("--restored", required=True, help="zip archive or folder")
    score.add_argument("--weights", required=True, help="weights directory")
    score.add_argument("--out", required=True)
    score.add_argument("--name", default="result", help="base name of the CSV files")
    score.add_argument("--profile", default="ntire2025-no-qalign")
    score.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    score.add_argument(
        "--metric-option", action="append", default=[], metavar="METRIC.KEY=VALUE",
        help="override one pyiqa option of the profile, e.g. maniqa.test_sample=2 (repeatable;"
             " recorded in the report's profile, so the numbers differ from the preset's)",
    )
    score.add_argument(
        "--images-per-call", default="", metavar="METRIC=N[,METRIC=N]",
        help="images per forward call for these metrics, e.g. maniqa=4 on a GPU (the same scores, to float32"
             " rounding; default: MANIQA one image, the others the whole batch)",
    )
    score.add_argument("--json", action="store_true")

    rank = sub.add_parser("rank", help="rank teams from a CSV with Table 1's columns")
    rank.add_argument("table")
    rank.add_argument("--max-failed", type=int, default=10)
    rank.add_argument("--json", action="store_true")

    stability = sub.add_parser("rank-stability", help="bootstrap rank stability and pairwise significance of a board")
    stability.add_argument("folder", help="eval.py per-image CSV files, <team>.csv each (+ <team>.npy or"
                                          " <team>_total.csv for FID)")
    stability.add_argument("--profile", default="ntire2025-no-qalign")
    stability.add_argument("--resamples", type=int, default=1000)
    stability.add_argument("--seed", type=int, default=2025)
    stability.add_argument("--alpha", type=float, default=0.05)
    stability.add_argument("--reference", help="FID reference statistics (inception_FFHQ_512.pth), for <team>.npy")
    stability.add_argument("--csv", help="also write the intervals table to this CSV file")
    stability.add_argument("--json", action="store_true")

    landmarks = sub.add_parser("landmarks", help="locate the faces' landmarks of an input set; writes the CSV")
    landmarks.add_argument("inputs", help="folder of <Dataset>/<stem>.png inputs")
    landmarks.add_argument("out", help="the landmarks CSV to write (val_face.csv's layout)")
    landmarks.add_argument("--weights", required=True, help="weights directory (detection_Resnet50_Final.pth)")
    landmarks.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    landmarks.add_argument("--confidence", type=float, default=0.8, help="a detection's least score to count")

    profiles = sub.add_parser("profiles", help="list the scoring profiles (--markdown: the README's table)")
    profiles.add_argument("--markdown", action="store_true")

    weights = sub.add_parser("weights", help="fetch, verify or generate test weights")
    weights.add_argument("action", choices=["fetch", "verify", "make-test"])
    weights.add_argument("dir")
    weights.add_argument("--niqe-params", help="make-test: copy these real NIQE parameters")
    from scoring.client import add_client_commands

    add_client_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check":
        from scoring.archive import run_check_cli

        return run_check_cli(Path(args.inputs), Path(args.source), args.json)
    if args.command == "rank":
        from scoring.ranking import run_rank_cli

        return run_rank_cli(Path(args.table), args.max_failed, args.json)
    if args.command == "score":
        return _score(args)
    if args.command == "rank-stability":
        from scoring.rank_stability import run_rank_stability_cli

        return run_rank_stability_cli(Path(args.folder), args.profile, args.resamples, args.seed, args.alpha,
                                      Path(args.reference) if args.reference else None, args.json,
                                      Path(args.csv) if args.csv else None)
    if args.command == "profiles":
        return _profiles(args)
    if args.command == "landmarks":
        return _landmarks(args)
    if args.command in ("submit", "status", "leaderboard", "download"):
        from scoring.client import run_client_command

        return run_client_command(args)
    return _weights(args)
