"""The ``facever`` command: serve, train, quantize, release, eval, keys, db.

Heavy imports (torch, the web stack) happen inside each command, so that the serving install
(no torch) and the training install each only need their own dependencies.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

app = typer.Typer(help="facever: self-hosted face verification.", no_args_is_help=True, add_completion=False)
eval_app = typer.Typer(help="Evaluate a model.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DATA = Path("../shared/data/lfw")
DEFAULT_CFP = Path("../shared/data/cfp")


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# Modules of the `eval` extra (evaluation without torch) and of the `train` extra (which includes eval):
# a command that needs one says which extra to install, in one line, instead of a traceback, when it
# runs in the serving install (`make run`).
EVAL_EXTRA_MODULES = {"sklearn", "matplotlib"}
TRAIN_EXTRA_MODULES = EVAL_EXTRA_MODULES | {
    "torch",
    "onnx",
    "onnxscript",
    "yaml",
    "dlib",
    "face_recognition_models",
}


def _needs_extra(command: str, extra: str = "train") -> Callable[[F], F]:
    modules = EVAL_EXTRA_MODULES if extra == "eval" else TRAIN_EXTRA_MODULES

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with _extra_hint(command, extra, modules):
                return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


@contextmanager
def _extra_hint(command: str, extra: str, modules: set[str]) -> Iterator[None]:
    try:
        yield
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in modules:
            raise
        typer.echo(
            f"facever {command} needs the '{extra}' extra (no module named '{missing}'): "
            f"pip install -e '.[{extra}]'",
            err=True,
        )
        raise typer.Exit(1) from None


def _check_database() -> None:
    """One clear line and exit status 1 when the configured database cannot be reached, not the
    driver's traceback."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from facever.app.core.config import get_settings
    from facever.app.db.session import Database

    url = get_settings().database_url
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        shown = "(unparsable URL)"
    try:
        database = Database(url)
        try:
            database.ping()
        finally:
            database.dispose()
    except (SQLAlchemyError, ImportError) as exc:
        reason = getattr(exc, "orig", None) or exc
        detail = " ".join(str(reason).split()) or type(reason).__name__
        typer.echo(
            f"facever: cannot connect to the database {shown} (FACEVER_DATABASE_URL): "
            f"{type(reason).__name__}: {detail}",
            err=True,
        )
        raise typer.Exit(1) from None


def _check_device() -> None:
    """With FACEVER_DEVICE=cuda (or FACEVER_DETECTION_DEVICE=cuda): one clear line and exit status 1
    when CUDA cannot run the model here, before any worker process starts."""
    from facever.app.core.config import get_settings
    from facever.model.card import ONNX_FILE
    from facever.model.onnx_session import create_session

    settings = get_settings()
    if "cuda" not in (settings.device, settings.detection_device):
        return
    try:
        create_session(settings.resolved_model_dir / ONNX_FILE, device="cuda")
    except RuntimeError as exc:
        typer.echo(f"facever: CUDA cannot run here: {' '.join(str(exc).split())}", err=True)
        raise typer.Exit(1) from None


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="address to listen on (default: FACEVER_HOST or 127.0.0.1)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="port (default: FACEVER_PORT or 8000)")] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="server processes (default: FACEVER_WORKERS, 0 = one per 2 CPU cores)", min=0),
    ] = None,
) -> None:
    """Run the HTTP service with the configured model and database."""
    _check_database()
    _check_device()
    from facever.app.main import run
    from facever.app.template_crypto import TemplateKeyError

    try:
        run(host=host, port=port, workers=workers)
    except TemplateKeyError as exc:
        typer.echo(f"facever: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
@_needs_extra("train")
def train(
    config: Annotated[Path, typer.Option(help="experiment YAML (e.g. training/configs/shipped.yaml)")],
    out: Annotated[Path, typer.Option(help="run folder: checkpoint, log, exported model")] = Path(
        "runs/latest"
    ),
    max_steps: Annotated[int | None, typer.Option(help="stop after this many steps (smoke runs)")] = None,
    evaluate: Annotated[bool, typer.Option(help="evaluate the exported model on the test folds")] = True,
    cfp: Annotated[
        Path, typer.Option(help="CFP folder, evaluated too when it exists (never trained or calibrated on)")
    ] = DEFAULT_CFP,
) -> None:
    """Train the embedding network, export it with a calibrated threshold, evaluate it on the test folds
    (LFW fold 10 on its own, all the test folds, and CFP FF and FP); the figures go into the model card."""
    _logging()
    from facever.training.config import load_config
    from facever.training.evaluation.evaluate import evaluate_into_card, format_report, save_json
    from facever.training.release import release
    from facever.training.train import train as run_training

    settings = load_config(config)
    checkpoint = run_training(settings, out, max_steps=max_steps)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun, only the first process exports and evaluates
    model_dir = out / "model"
    card = release(checkpoint, model_dir)
    typer.echo(f"exported {model_dir} (threshold {card.threshold:.4f})")
    if not evaluate:
        return
    reports = evaluate_into_card(model_dir, Path(settings.data.lfw), cfp, Path(settings.data.cache_dir))
    save_json(reports, out / "eval.json")
    typer.echo("\n\n".join(format_report(report) for report in reports.values()))


@app.command()
@_needs_extra("quantize")
def quantize(
    model: Annotated[Path, typer.Option(help="the exported float model to quantise")] = Path("model/float"),
    out: Annotated[Path, typer.Option(help="folder for the int8 facever.onnx and its model card")] = Path(
        "runs/int8/model"
    ),
    data: Annotated[Path, typer.Option(help="LFW folder: calibration folds' photos")] = DEFAULT_DATA,
    cfp: Annotated[Path, typer.Option(help="CFP folder, evaluated too when it exists")] = DEFAULT_CFP,
    cache_dir: Annotated[Path, typer.Option(help="embedding cache")] = Path(".cache"),
    evaluate: Annotated[bool, typer.Option(help="evaluate the int8 model like facever train does")] = True,
    flip: Annotated[
        bool | None,
        typer.Option(
            "--flip/--no-flip", help="average each face with its mirror image (default: as the float model)"
        ),
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="the int8 model's version (default: the float model's)")
    ] = None,
) -> None:
    """An int8 copy of an exported model (onnxruntime static quantisation, calibrated on the calibration
    folds' people), with its own calibrated thresholds and evaluation in its card."""
    _logging()
    from facever.training.evaluation.evaluate import evaluate_into_card, format_report, save_json
    from facever.training.quantize import quantize as run_quantize

    card = run_quantize(model, out, data, cache_dir, flip_test_time=flip, version=version)
    typer.echo(f"quantised {model} -> {out} (threshold {card.threshold:.4f})")
    if evaluate:
        reports = evaluate_into_card(out, data, cfp, cache_dir)
        save_json(reports, out.parent / "eval.json")
        typer.echo("\n\n".join(format_report(report) for report in reports.values()))


@app.command()
@_needs_extra("release")
def release(
    checkpoint: Annotated[Path, typer.Argument(help="checkpoint.pt written by facever train")],
    out: Annotated[Path, typer.Option(help="folder for facever.onnx and model_card.json")],
    data: Annotated[Path | None, typer.Option(help="LFW folder for threshold calibration")] = None,
    flip: Annotated[
        bool | None, typer.Option("--flip/--no-flip", help="average each face with its mirror image")
    ] = None,
) -> None:
    """Release a checkpoint: ONNX with a model card and thresholds calibrated on held-out people."""
    _logging()
    from facever.training.release import release as release_checkpoint

    card = release_checkpoint(checkpoint, out, data, flip_test_time=flip)
    typer.echo(f"released {out} (threshold {card.threshold:.4f})")


def _model_folder(value: str) -> Path:
    """A model folder from --model: a folder with a model card, else a model shipped in the package
    (found from any working folder), else a clear error naming both kinds."""
    from facever.app.core.config import shipped_model_dir, shipped_models

    folder = Path(value).expanduser()
    if (folder / "model_card.json").is_file():
        return folder
    if value in shipped_models():
        return shipped_model_dir(value)
    raise typer.BadParameter(
        f"{value!r} is neither a folder with model_card.json nor a shipped model "
        f"({', '.join(shipped_models())})",
        param_hint="--model",
    )


@eval_app.command("lfw")
@_needs_extra("eval lfw", "eval")
def eval_lfw(
    model: Annotated[
        str,
        typer.Option(
            help="a shipped model by name (default, float) or a folder with facever.onnx + model_card.json"
        ),
    ] = "default",
    data: Annotated[Path, typer.Option(help="LFW folder with images/ and pairs.txt")] = DEFAULT_DATA,
    fold: Annotated[
        list[int] | None, typer.Option(help="fold(s) to test; default: the card's test folds")
    ] = None,
    include_seen: Annotated[bool, typer.Option(help="allow folds the model saw (not a test result)")] = False,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the report here")] = None,
    report: Annotated[Path | None, typer.Option(help="folder for ROC, score, reliability plots")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="cache embeddings here for cheap reruns")] = None,
) -> None:
    """The LFW View 2 protocol (threshold from the other nine folds) and more, on an exported model."""
    _logging()
    from facever.training.evaluation.evaluate import evaluate_lfw, format_report, save_json

    try:
        result = evaluate_lfw(_model_folder(model), data, fold, include_seen, cache_dir, report)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(format_report(result))
    if json_path:
        save_json(result, json_path)


@eval_app.command("cfp")
@_needs_extra("eval cfp", "eval")
def eval_cfp(
    model: Annotated[
        str,
        typer.Option(
            help="a shipped model by name (default, float) or a folder with facever.onnx + model_card.json"
        ),
    ] = "default",
    data: Annotated[Path, typer.Option(help="CFP folder with Data/ and Protocol/")] = DEFAULT_CFP,
    protocol: Annotated[str, typer.Option(help="FF (frontal-frontal) or FP (frontal-profile)")] = "FF",
    json_path: Annotated[Path | None, typer.Option("--json", help="write the report here")] = None,
    report: Annotated[Path | None, typer.Option(help="folder for ROC, score, reliability plots")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="cache embeddings here for cheap reruns")] = None,
) -> None:
    """CFP's 10-fold protocol (FF or FP) on an exported model; a photo with no face fails its pairs."""
    _logging()
    from facever.training.evaluation.evaluate import evaluate_cfp, format_report, save_json

    if protocol not in ("FF", "FP"):
        raise typer.BadParameter("FF or FP", param_hint="--protocol")
    result = evaluate_cfp(_model_folder(model), data, protocol, cache_dir, report)  # type: ignore[arg-type]
    typer.echo(format_report(result))
    if json_path:
        save_json(result, json_path)


@keys_app.command("create")
def keys_create(
    scope: Annotated[str, typer.Option(help="admin (manage identities) or verify (verify, identify)")],
    name: Annotated[str, typer.Option(help="a label for the key")] = "",
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    from facever.app.auth import create_key_cli

    try:
        typer.echo(create_key_cli(scope, name))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scope") from None


@keys_app.command("list")
def keys_list() -> None:
    """List the stored API keys: id, scope, first characters, creation time, label (never a whole key)."""
    _check_database()
    from facever.app.auth import list_keys_cli

    typer.echo(list_keys_cli())


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="the key's id (#N in facever keys list)")],
) -> None:
    """Revoke an API key: its hash is deleted and every later request with it gets 401."""
    _check_database()
    from facever.app.auth import revoke_key_cli

    try:
        typer.echo(revoke_key_cli(key_id))
    except LookupError as exc:
        typer.echo(f"facever: {exc}", err=True)
        raise typer.Exit(1) from None


@keys_app.command("new-template-key")
def keys_new_template_key() -> None:
    """Print a new random key for FACEVER_TEMPLATE_KEY (templates encrypted at rest); nothing is stored."""
    from facever.app.template_crypto import new_key

    typer.echo(new_key())


@keys_app.command("rotate-templates")
def keys_rotate_templates(
    batch: Annotated[int, typer.Option(help="templates re-encrypted per transaction", min=1)] = 500,
) -> None:
    """Re-encrypt every stored template under the current FACEVER_TEMPLATE_KEY (also those stored in
    clear), while the service runs; FACEVER_TEMPLATE_PREVIOUS_KEYS must hold the keys they are under."""
    _logging()
    _check_database()
    from facever.app.template_crypto import TemplateDecryptionError, TemplateKeyError
    from facever.app.template_keys import rotate_cli

    try:
        typer.echo(rotate_cli(batch))
    except (TemplateKeyError, TemplateDecryptionError) as exc:
        typer.echo(f"facever: {exc}", err=True)
        raise typer.Exit(1) from None


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (the service also does this at start)."""
    _logging()
    _check_database()
    from facever.app.db.migrate import upgrade

    upgrade()
    typer.echo("database is up to date")


@db_app.command("pgvector")
def db_pgvector() -> None:
    """Add the pgvector column and HNSW index to a PostgreSQL that got the extension after its migrations
    ran (migration 0004 (pgvector) does the same where the extension is there); exit 1 where it cannot."""
    _logging()
    _check_database()
    from facever.app.core.config import get_settings
    from facever.app.db.session import create_db_engine
    from facever.app.db.vector_schema import add_vector_column

    engine = create_db_engine(get_settings().database_url)
    try:
        with engine.begin() as connection:
            added = add_vector_column(connection)
    finally:
        engine.dispose()
    if not added:
        typer.echo(
            "facever: no pgvector column: the database is not PostgreSQL, or CREATE EXTENSION vector failed "
            "(see the log line above)",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo("pgvector gallery ready: faces.embedding_vector and its HNSW index exist")


# python -m facever.cli; the guard keeps uvicorn's worker processes (spawned) from running it again
if __name__ == "__main__":
    app()
