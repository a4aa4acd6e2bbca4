"""Each benchmark script runs once in smoke mode (a few images, a fraction of a second of load) so that
it cannot rot; the JSON it writes has the expected shape, and report.py turns it into tables.

No timing is asserted anywhere: benchmarks are not tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
MACHINE_KEYS = {"date", "cpu", "logical_cpus", "usable_cpus", "load_average", "python", "numpy"}
MACHINE_KEYS |= {"onnxruntime", "onnxruntime_providers", "dlib", "git_commit", "git_dirty"}
REPORT_KEYS = {"accuracy_mean", "accuracy_std", "accuracy_at_model_threshold", "auc", "eer", "tar_at_far"}
REPORT_KEYS |= {"n_pairs", "folds"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench-results")


@pytest.fixture(scope="module")
def smoke(results_dir, lfw_root):
    """Runs ``bench/<name>.py --smoke`` once per module; returns its JSON."""
    done: dict[str, dict] = {}

    def run(name: str) -> dict:
        if name not in done:
            command = [sys.executable, str(BENCH / f"{name}.py"), "--smoke", "--out", str(results_dir)]
            command += ["--name", name]
            command += ["--data", str(lfw_root)]
            if model := os.environ.get("FACEVER_TEST_MODEL_DIR"):
                command += ["--model", model]
            subprocess.run(command, cwd=REPO, check=True, timeout=900)  # a guard against hanging only
            done[name] = json.loads((results_dir / f"{name}.json").read_text())
        return done[name]

    return run


def check_common(payload: dict, benchmark: str) -> None:
    assert payload["benchmark"] == benchmark and payload["mode"] == "smoke"
    assert MACHINE_KEYS <= payload["machine"].keys()
    assert payload["machine"]["logical_cpus"] >= 1 and payload["machine"]["onnxruntime_providers"]
    assert payload["tables"] and all(table.startswith("| ") for table in payload["tables"].values())


def test_accuracy(smoke):
    payload = smoke("accuracy")
    check_common(payload, "accuracy")
    results = payload["results"]
    assert results["facever"], "every shipped model is measured"
    systems = [*results["facever"].values(), results["dlib"]]
    for reports in systems:
        assert reports["embed_ms_one_core"] > 0
        for name in ("lfw_fold10", "cfp_ff", "cfp_fp"):
            report = reports[name]
            assert REPORT_KEYS <= report.keys(), name
            assert {"no_face_count", "failed_pairs", "n_images", "n_pairs_scored"} <= report.keys()
            assert set(report["tar_at_far"]) == {"1e-3", "1e-2"}
            assert 0 <= report["accuracy_at_model_threshold"] <= 1
        assert reports["lfw_fold10"]["folds"] == [10]
        assert reports["cfp_ff"]["folds"] == reports["cfp_fp"]["folds"] == list(range(1, 11))
        every = reports["cfp_ff"]["all_vs_all"]
        assert every["impostor_pairs"] > 0 and every["at_card_thresholds"]
        assert every["scores"]["impostor"]["mean"] < every["scores"]["genuine"]["mean"]
    assert results["dlib"]["lfw_all_folds"]["folds"] == list(range(1, 11))
    # same pairs for every system
    pair_counts = {(name, r[name]["n_pairs"]) for r in systems for name in ("lfw_fold10", "cfp_ff", "cfp_fp")}
    assert len(pair_counts) == 3


def test_speed(smoke):
    payload = smoke("speed")
    check_common(payload, "speed")
    runs = {run["threads"]: run for run in payload["results"]["runs"] if run["device"] == "cpu"}
    assert set(runs) == {0, 1}
    assert len(runs[1]["affinity"]) == 1
    for run in runs.values():
        assert set(run["engines"]) == {"facever", "dlib"}
        for engine in run["engines"].values():
            assert engine["faces_found"] + engine["no_face"] == run["images"]
            assert engine["detect_align"]["n"] == run["images"]
            assert engine["embed"]["n"] == engine["total"]["n"] == engine["faces_found"] > 0
            for part in ("detect_align", "embed", "total"):
                assert {"median_ms", "p95_ms"} <= engine[part].keys()
        assert set(run["batch"]) == {"1", "8", "32", "128"}
        assert all(b["faces_per_s"] > 0 for b in run["batch"].values())
        passes = run["detector_passes"]["sources"]
        assert set(passes) == {"LFW", "CFP profile"}
        n_profiles = payload["config"]["cfp_profile_images"]
        assert sum(group["images"] for group in passes["CFP profile"].values()) == n_profiles > 0
        for groups in passes.values():
            assert set(groups) == {"first pass", "second pass", "no face"}
            for group in groups.values():
                assert group["detect"]["n"] == group["first_pass_only"]["n"] == group["images"]
    ratios = payload["results"]["ratios"]
    assert {r["facever"] for r in ratios} >= {run["label"] for run in runs.values()}
    assert all(r["detect_align"] > 0 and r["embed"] > 0 for r in ratios)
    goal = payload["results"]["goal_one_core"]
    assert goal["setting"] == runs[1]["label"]
    for part in ("total", "embed"):  # the goal is the whole image's ratio; the network's is beside it
        medians = [runs[1]["engines"][name][part]["median_ms"] for name in ("dlib", "facever")]
        assert goal[part]["ratio"] == pytest.approx(medians[0] / medians[1])
    assert goal["met"] == (goal["total"]["ratio"] >= goal["bar"])


def test_load(smoke):
    payload = smoke("load")
    check_common(payload, "load")
    results = payload["results"]
    assert [level["concurrency"] for level in results["levels"]] == payload["config"]["levels"]
    for level in results["levels"]:
        assert {"requests_per_s", "latency", "errors", "statuses", "rss_after_bytes"} <= level.keys()
        assert level["ok"] > 0 and {"median_ms", "p95_ms", "p99_ms"} <= level["latency"].keys()
    assert results["rss_start_bytes"] > 0 and results["rss_peak_bytes"] >= results["rss_start_bytes"]
    assert payload["config"]["server"]["providers"]


def test_overload(smoke):
    payload = smoke("overload")
    check_common(payload, "overload")
    results = payload["results"]
    for limit in ("off", "on"):
        idle = results["idle_connections"][limit]
        assert idle["requests"] > 0 and idle["hog"]["opened"] >= payload["config"]["connections"]
        assert sum(idle["outcomes"].values()) == idle["requests"]
        uploads = results["large_uploads"][limit]
        assert sum(uploads["outcomes"].values()) == payload["config"]["uploads"]
        assert uploads["hwm_sum_bytes"] >= uploads["rss_start_bytes"] > 0
    assert payload["config"]["settings"]["off"] == {
        "max_connections_per_client": "0",
        "upload_budget_bytes": "0",
    }


def test_devices(smoke):
    payload = smoke("devices")
    check_common(payload, "devices")
    detection, embedding = payload["results"]["detection"], payload["results"]["embedding"]
    assert "cpu, 1 thread" in detection and "cpu, 1 thread" in embedding
    for row in detection.values():
        assert row["ms_per_photo"] > 0
    same = detection["cpu, 1 thread"]["same_faces_as_cpu"]
    assert same == {"photos_with_other_face_count": 0, "max_box_px": 0.0, "max_landmark_px": 0.0}
    for row in embedding.values():
        assert all(rate > 0 for rate in row["faces_per_s"].values())
        if row["providers"][0] == "CPUExecutionProvider":
            assert row["max_diff_batched_vs_alone"] <= 1e-6 and row["max_diff_vs_cpu"] <= 1e-6
    batched = payload["results"]["detection_batches"]
    assert {"cpu, 1 thread; LFW", "cpu, 1 thread, canvas; mixed sizes"} <= set(batched)
    for name, row in batched.items():
        assert all(rate > 0 for rate in row["photos_per_s"].values())
        if name.startswith("cpu"):  # several photos a call, canvas or not: each photo's own faces
            exact = {"photos_with_other_face_count": 0, "max_box_px": 0.0, "max_landmark_px": 0.0}
            assert row["same_faces_as_cpu_alone"] == exact
    profiles = payload["results"]["network_profiles"]["cpu"]
    # onnxruntime's profile files go to a temporary folder, not the working directory
    assert not list(REPO.glob("onnxruntime_profile__*")) and not list(BENCH.glob("onnxruntime_profile__*"))
    assert set(profiles) == {"pnet", "rnet", "onet"}
    for row in profiles.values():
        assert all(ms > 0 for ms in row["ms"].values()) and "Conv" in row["kernel_time_share"]
        assert row["nodes_not_on_device"] == []


def test_alignment(smoke):
    payload = smoke("alignment")
    check_common(payload, "alignment")
    assert len(payload["config"]["box_map"]) == 4
    for report in payload["results"].values():
        assert report["pairs"] > 0 and 0 <= report["no_face"] <= report["photos"]
        for method in ("mtcnn", "dlib-5"):
            assert 0 <= report[method]["auc"] <= 1


def test_proxies(smoke):
    payload = smoke("proxies")
    check_common(payload, "proxies")
    variants = [row["set"].rsplit(" ", 1)[1] for row in payload["results"]["rows"]]
    assert variants == ["original", "tight", "relit"] * 2  # LFW fold 10, then CFP-FF
    for row in payload["results"]["rows"]:
        assert 0 <= row["pairs_both_found"] <= row["pairs"]
        for system in ("facever", "dlib"):
            assert 0 <= row[system]["no_face"] <= row["photos"]
            assert 0 <= row[system]["all_pairs"]["accuracy_at_own_threshold"] <= 1
    for cost in payload["results"]["relight_retry_cost"].values():
        assert cost["photos"] > 0 and 0 <= cost["found_only_by_the_retry"] <= cost["photos"]


def test_framing(smoke):
    payload = smoke("framing")
    check_common(payload, "framing")
    sets = list(payload["results"])
    assert sets == [
        f"{name} {variant}"
        for name in ("LFW fold 10", "CFP-FF")
        for variant in ("original", "tight", "relit")
    ] + ["CFP-FP original"]
    for report in payload["results"].values():
        assert (
            0 <= report["pairs_both_found"] <= report["pairs"] and 0 <= report["no_face"] <= report["photos"]
        )
        assert (
            report["dlib_uses"]["mtcnn"] == 0
            and report["dlib_uses"]["dlib-5"] == report["photos"] - report["no_face"]
        )
        for rule in report["rules"].values():
            assert 0 <= rule["both_found"]["accuracy_at_card_threshold"] <= 1
            low, high = rule["versus_mtcnn"]["accuracy_difference_95"]
            assert -1 <= low <= high <= 1
        assert report["rules"]["mtcnn"]["versus_mtcnn"]["accuracy_difference_95"] == [0.0, 0.0]


def test_views(smoke):
    payload = smoke("views")
    check_common(payload, "views")
    assert list(payload["results"]) == ["original", "tight", "relit"]
    for report in payload["results"].values():
        assert 0 < report["pairs_found"] <= report["pairs"]
        for framing in ("landmarks", "dlib-5", "both"):
            assert 0 <= report[framing]["accuracy"] <= 1 and 0 <= report[framing]["auc"] <= 1


def test_equalise(smoke):
    payload = smoke("equalise")
    check_common(payload, "equalise")
    assert list(payload["results"]) == ["original", "tight", "relit"]
    for report in payload["results"].values():
        assert 0 < report["pairs_both_found"] <= report["pairs"]
        for setting in ("photo as it is", "equalised copy first"):
            assert 0 <= report[setting]["no_face"] <= report[setting]["photos"]
            assert 0 <= report[setting]["accuracy"] <= 1 and 0 <= report[setting]["auc"] <= 1


def test_mirror_landmarks(smoke):
    payload = smoke("mirror_landmarks")
    check_common(payload, "mirror_landmarks")
    assert list(payload["results"]) == ["original", "tight", "relit"]
    for report in payload["results"].values():
        for setting in ("O-Net's landmarks", "averaged with the mirrored crop's"):
            assert 0 <= report[setting]["accuracy"] <= 1 and 0 <= report[setting]["auc"] <= 1


def test_pnet_fill(smoke):
    payload = smoke("pnet_fill")
    check_common(payload, "pnet_fill")
    assert list(payload["results"]) == ["original", "tight", "relit"]
    for report in payload["results"].values():
        for setting in (
            "P-Net 0.6, black",
            "P-Net 0.8 first, black",
            "P-Net 0.6, mean colour",
            "P-Net 0.8 first, mean colour",
        ):
            assert 0 <= report[setting]["no_face"] <= report[setting]["photos"]
            assert 0 <= report[setting]["accuracy"] <= 1 and 0 <= report[setting]["auc"] <= 1


def test_pyramid(smoke):
    payload = smoke("pyramid")
    check_common(payload, "pyramid")
    assert list(payload["results"]) == ["original", "tight", "relit"]
    for report in payload["results"].values():
        for setting in ("levels from the photo", "levels from the level before"):
            assert 0 <= report[setting]["no_face"] <= report[setting]["photos"]
            assert 0 <= report[setting]["accuracy"] <= 1 and 0 <= report[setting]["auc"] <= 1


def test_model_choice(results_dir, lfw_root):
    """The four settings, with the shipped models standing in for the two the script is given."""
    command = [sys.executable, str(BENCH / "model_choice.py"), "--smoke", "--out", str(results_dir)]
    command += ["--data", str(lfw_root), "--int8", str(REPO / "model" / "float")]
    command += ["--float-mirrored", str(REPO / "model" / "default")]
    subprocess.run(command, cwd=REPO, check=True, timeout=900)
    payload = json.loads((results_dir / "model_choice.json").read_text())
    check_common(payload, "model_choice")
    assert set(payload["config"]["models"]) == {"float", "float, mirrored too", "int8", "int8, mirrored too"}
    for report in payload["results"].values():
        assert 0 < report["pairs_both_found"] <= report["pairs"]
        # the same model under two names scores the same
        assert report["float"]["auc"] == report["int8"]["auc"]


def test_parts(smoke):
    payload = smoke("parts")
    check_common(payload, "parts")
    totals = payload["results"]["totals"]
    assert totals["part check"][0] == totals["no part check"][0] > 0
    for crops, misplaced, no_face in totals.values():
        assert 0 <= misplaced + no_face <= crops
    assert 0 <= payload["results"]["ordinary_photos"]["part_check_ran_share"] <= 1


def test_ab(results_dir, lfw_root, tmp_path):
    """Old and new servers alternately; here the "old" one is this checkout too, found through
    PYTHONPATH as a real old checkout would be."""
    package = tmp_path / "facever"
    package.mkdir()
    for source in (REPO / "facever").glob("*.py"):
        shutil.copy(source, package)
    for folder in ("model", "training", "app"):
        (package / folder).symlink_to(REPO / folder)
    command = [sys.executable, str(BENCH / "ab.py"), "--smoke", "--out", str(results_dir), "--name", "ab"]
    command += ["--data", str(lfw_root), "--old-path", str(tmp_path), "--levels", "1"]
    subprocess.run(command, cwd=REPO, check=True, timeout=900)
    payload = json.loads((results_dir / "ab.json").read_text())
    check_common(payload, "ab")
    rounds = payload["results"]["rounds"]
    assert {r["version"] for r in rounds} == {"old", "new"}
    assert all(r["ok"] > 0 and r["errors"] == 0 for r in rounds)
    assert all(r["server_cpu_ms_per_ok"] > 0 for r in rounds)  # the server's processes were found


def test_gallery(smoke):
    payload = smoke("gallery")
    check_common(payload, "gallery")
    (size,) = payload["results"]["sizes"]
    assert size["templates"] == 1000 and size["index_bytes"] >= size["matrix_bytes"] > 0
    for key in ("search_threshold", "search_no_threshold", "add_one_template", "remove_one_identity"):
        assert {"median_ms", "p99_ms"} <= size[key].keys()
    assert size["probes_matched_at_threshold"] == size["probes"]  # every probe finds its source


def test_template_encryption(smoke):
    payload = smoke("template_encryption")
    check_common(payload, "template_encryption")
    databases = payload["results"]["databases"]
    assert {"sqlite, clear", "sqlite, encrypted"} <= databases.keys()
    for result in databases.values():
        assert result["enroll_one_template"]["n"] == 30
        assert [load["templates"] for load in result["loads"]] == [2000]
    assert payload["results"]["cipher"]["decrypt_us"] > 0


def test_gpu_torch(smoke):
    """Runs on whatever device there is (the CPU in CI): the shape of the GPU sitting's result."""
    payload = smoke("gpu_torch")
    check_common(payload, "gpu-torch")
    results = payload["results"]
    assert {"float32", "bfloat16"} == {r["precision"] for r in results["inference"]}
    assert all(r["faces_per_s"] > 0 for r in results["inference"] + results["onnxruntime_cpu"])
    assert all(r["images_per_s"] > 0 for r in results["training"])
    assert results["min_cosine_vs_onnx_cpu"]["float32"] > 0.999  # the same network as model/float's ONNX


def test_report_writes_the_tables_between_the_markers(smoke, results_dir, tmp_path):
    payloads = {name: smoke(name) for name in ("accuracy", "speed", "load", "gallery")}
    doc = tmp_path / "BENCHMARKS.md"
    shutil.copy(REPO / "BENCHMARKS.md", doc)
    report = [sys.executable, str(BENCH / "report.py"), "--results", str(results_dir), "--doc", str(doc)]

    subprocess.run(report, check=True, timeout=60)
    assert doc.read_text() == (REPO / "BENCHMARKS.md").read_text()  # smoke results are refused

    subprocess.run([*report, "--allow-smoke"], check=True, timeout=60)
    text = doc.read_text()
    for name, payload in payloads.items():
        section = text.split(f"<!-- bench:{name}:start -->")[1].split(f"<!-- bench:{name}:end -->")[0]
        assert "Smoke run of" in section
        for table in payload["tables"].values():
            assert table in section
    kept = (REPO / "BENCHMARKS.md").read_text().split("<!-- bench:devices-gpu:start -->")[1]
    kept = kept.split("<!-- bench:devices-gpu:end -->")[0]
    assert kept.strip() and kept in text  # no result in results_dir: the section is kept as it was


def test_quality(lfw_root, cfp_root, tmp_path):
    """In its own folder: report.py must not meet its result before BENCHMARKS.md has its markers."""
    command = [sys.executable, str(BENCH / "quality.py"), "--smoke", "--out", str(tmp_path)]
    command += ["--data", str(lfw_root), "--cfp", str(cfp_root)]
    if model := os.environ.get("FACEVER_TEST_MODEL_DIR"):
        command += ["--model", model]
    subprocess.run(command, cwd=REPO, check=True, timeout=900)  # a guard against hanging only
    payload = json.loads((tmp_path / "quality.json").read_text())
    check_common(payload, "quality")
    gate = payload["config"]["gate"]
    assert 0 < gate < 1 and gate in payload["config"]["gates"]
    results = payload["results"]
    assert set(results["photos"]) == {"LFW (View 2 pair photos)", "CFP frontal", "CFP profile"}
    for summary in results["photos"].values():
        assert summary["photos"] > 0 and 0 <= summary["pass_share"] <= 1
        assert sum(summary["reasons"].values()) == summary["photos"]
        assert summary["pass_share"] == summary["pass_share_by_gate"][str(gate)]
    assert set(results["verification"]) == {"CFP-FF", "CFP-FP"}
    for protocol in results["verification"].values():
        assert protocol["pairs"] >= protocol["passing_pairs"] > 0
        assert REPORT_KEYS <= protocol["all"].keys() and protocol["all"]["n_pairs"] == protocol["pairs"]
        assert protocol["passing"]["n_pairs"] == protocol["passing_pairs"]
    # frontal photos nearly all pass the default gate; profiles much less often
    assert results["photos"]["CFP frontal"]["pass_share"] > results["photos"]["CFP profile"]["pass_share"]


def test_gallery_backends(results_dir, lfw_root):
    """bench/gallery.py --backends on a PostgreSQL with pgvector (FACEVER_TEST_POSTGRES_URL)."""
    url = os.environ.get("FACEVER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    try:
        engine = create_engine(url)
        with engine.connect() as connection:
            found = connection.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"))
            installed = found.scalar() is not None
        engine.dispose()
    except Exception:  # noqa: BLE001 - whatever the driver raises, there is no usable server
        installed = False
    if not installed:
        if os.environ.get("FACEVER_TEST_REQUIRE_PGVECTOR") == "1":
            pytest.fail(f"no PostgreSQL with pgvector at {url}")
        pytest.skip("needs PostgreSQL with pgvector")
    command = [sys.executable, str(BENCH / "gallery.py"), "--backends", "--smoke", "--out", str(results_dir)]
    command += ["--data", str(lfw_root), "--postgres-url", url]
    if model := os.environ.get("FACEVER_TEST_MODEL_DIR"):
        command += ["--model", model]
    subprocess.run(command, cwd=REPO, check=True, timeout=900)
    payload = json.loads((results_dir / "gallery-backends.json").read_text())
    check_common(payload, "gallery-backends")
    (size,) = payload["results"]["sizes"]
    assert size["templates"] == 3000 and size["plan_uses_hnsw"]
    assert 0 <= size["agreement"]["recall_at_1"] <= 1 and size["agreement"]["probes"] >= 30
    for backend in ("memory", "pgvector"):
        assert {"median_ms", "p99_ms", "searches_per_s"} <= size[backend]["c8"].keys()
        assert size["rss"][backend]["rss_bytes"] > 0 and size["rss_empty"][backend]["templates"] == 0
    assert size["rss"]["memory"]["templates"] == size["rss"]["pgvector"]["templates"] == 3000
    assert size["load"]["hnsw_index_bytes"] > 0 and size["load"]["index_build_s"] > 0


def test_stages(smoke):
    payload = smoke("stages")
    check_common(payload, "stages")
    stages = payload["results"]["stages"]
    parts = [s for s in stages if s != "whole image"]
    assert all(stages[s]["n"] == stages["whole image"]["n"] > 0 for s in parts)
    # The stages split the whole image between them: their means add up to its mean.
    assert sum(stages[s]["mean_ms"] for s in parts) == pytest.approx(
        stages["whole image"]["mean_ms"], rel=0.01
    )
    assert all(stages[s]["mean_ms"] > 0 for s in parts) and payload["results"]["networks_ms"] > 0
    assert payload["results"]["candidate_crops_per_image"]["R-Net crops"] >= 1


def test_gap(smoke):
    payload = smoke("gap")
    check_common(payload, "gap")
    medians = payload["results"]["median_us"]
    assert set(medians) == {"busy loop", "sleep"}
    for by_ms in medians.values():
        assert set(by_ms) == {"0", "1"}  # the smoke run's gaps
        for calls in by_ms.values():
            assert set(calls) == {"onnxruntime run (one Relu)", "numpy add", "facever whole photo"}
            assert all(value > 0 for value in calls.values())
            # a whole photo (detection, chip, embedding) is work; one Relu is next to nothing
            assert calls["facever whole photo"] > calls["onnxruntime run (one Relu)"]
    table = next(iter(payload["tables"].values()))
    assert "facever whole photo, after a sleep" in table and "| 1 ms |" in table


def test_jitter(smoke):
    payload = smoke("jitter")
    check_common(payload, "jitter")
    by_noise = payload["results"]["by_noise"]
    assert [float(noise) for noise in by_noise] == [1e-6, 1e-5, 1e-4, 1e-3, 1e-2]
    draws = payload["config"]["pairs"] * payload["config"]["draws"]
    assert draws > 0
    for row in by_noise.values():
        assert row["draws"] == draws
        assert 0 <= row["scores_changed"] <= draws and 0 <= row["median_abs_change"] <= row["max_abs_change"]
    # a hundredth of a pixel changes the chip: its pixels are rounded to whole values
    assert by_noise["0.01"]["chips_changed"] > 0


def test_stages_with_a_pause_before_each_photo(results_dir, lfw_root):
    command = [
        sys.executable,
        str(BENCH / "stages.py"),
        "--smoke",
        "--between",
        "pause",
        "--out",
        str(results_dir),
    ]
    command += ["--name", "stages-pause", "--data", str(lfw_root)]
    if model := os.environ.get("FACEVER_TEST_MODEL_DIR"):
        command += ["--model", model]
    subprocess.run(command, cwd=REPO, check=True, timeout=900)
    payload = json.loads((results_dir / "stages-pause.json").read_text())
    assert payload["config"]["between"] == "pause"
    assert "100 ms pause before each" in next(iter(payload["tables"]))
    stages = payload["results"]["stages"]
    # the pause itself is not timed: a photo is nowhere near 100 ms
    assert stages["whole image"]["median_ms"] < 100
