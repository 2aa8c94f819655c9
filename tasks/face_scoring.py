"""Stage: score every output unit of the network as a face detector."""
from __future__ import annotations

from pathlib import Path

from prefect import task

from tasks.face_network import load_network
from tasks.logs import stage_logger
from terafeat.analysis.face_data import face_detection_set
from terafeat.analysis.unit_scoring import score_face_units
from terafeat.atomic_files import save_array


@task(name="score-face-units")
def score_units(network_path: str, run_dir: str, frame_size: int, n_nonfaces_per_face: float,
                seed: int, prefix: str = "") -> dict:
    """Held-out faces vs non-faces through the network; writes the detection set
    (``detection_images.npy``, ``detection_is_face.npy``) and ``<prefix>responses.npy``
    (n, units); returns ``score_face_units``'s numbers (arrays as lists)."""
    logger = stage_logger()
    images, is_face = face_detection_set(frame_size, n_nonfaces_per_face, seed)
    responses = load_network(network_path).transform(images)
    scores = score_face_units(responses, is_face, seed)
    run = Path(run_dir)
    logger.info("%sbest unit %d: held-out accuracy %.3f (random unit %.3f, linear %.3f, "
                "majority %.3f)", prefix.replace("_", " "), scores["best_unit"], scores["best_unit_accuracy"],
                scores["random_unit_accuracy"], scores["linear_accuracy"],
                scores["majority_accuracy"])
    scores = {key: value.tolist() if hasattr(value, "tolist") else value
              for key, value in scores.items()}
    return dict(scores, images=str(save_array(run / "detection_images.npy", images)),
                is_face=str(save_array(run / "detection_is_face.npy", is_face)),
                responses=str(save_array(run / f"{prefix}responses.npy", responses)),
                n_faces=int(is_face.sum()), n_images=int(len(is_face)))
