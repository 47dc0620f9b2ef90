"""The whole reconstruction, stage by stage, with models kept loaded between images."""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Cancelled
from ..files.photos import Photo, load_image, photo_from_array
from ..geometry.camera import choose_intrinsics, to_output_frame
from ..geometry.mesh import Mesh
from ..protocol import STAGE_LABELS
from ..settings import Settings
from .result import Result

#: How many recent point clouds (and their Poisson surfaces) a pipeline keeps for re-meshing.
KEEP_CLOUDS = 4

#: progress(stage, fraction of that stage done in [0, 1], message)
ProgressFn = Callable[[str, float, str], None]
CancelFn = Callable[[], bool]


class Pipeline:
    """Runs reconstructions; keeps depth and segmentation models loaded across calls."""

    def __init__(self, cache_dir: str | Path | None = None, *, concurrent: bool = False) -> None:
        from .startup import defer_open3d_plotly

        defer_open3d_plotly()  # a second off Open3D's import, which meshing needs
        # concurrent: segmentation and depth at the same time (both networks release the
        # GIL). Off by default: on two cores the two compute-bound networks only fight for
        # them (measured 1.1-1.3x slower there); the model loads overlap, but not by enough.
        self.concurrent = concurrent
        self._estimators: dict[tuple, object] = {}
        self._remover = None
        self._cache_dir = cache_dir
        self._generators: dict[tuple, object] = {}
        # The last few point clouds, by a digest of what they were made from, each with
        # the Poisson surfaces solved from it: a re-mesh of a recent photo with
        # new mesh settings starts from them instead of back-projecting and solving again.
        self._clouds: OrderedDict[bytes, tuple[object, dict]] = OrderedDict()
        # The last photo at full size (digest, Pillow image): a re-mesh re-bakes its
        # texture without decoding a 12-MP file again.
        self._original: tuple[str, Any] | None = None

    # -- models -------------------------------------------------------------------------
    def depth_estimator(self, settings: Settings):
        from ..depth.estimator import DepthEstimator

        key = (
            settings.depth_model,
            settings.model_dir,
            settings.device,
            settings.depth_kind,
            settings.depth_resolution,
            settings.depth_backend,
            settings.quantize,
        )
        if key not in self._estimators:
            self._estimators[key] = DepthEstimator(
                settings.depth_model,
                device=settings.device,
                model_dir=settings.model_dir,
                kind=settings.depth_kind,
                resolution=settings.depth_resolution,
                backend=settings.depth_backend,
                quantize=settings.quantize,
            )
        return self._estimators[key]

    def load_models(self, settings: Settings, image_size: tuple[int, int] | None = None) -> None:
        """Load the networks ``settings`` use now rather than on the first photo.

        ``image_size``: the working image's (width, height), so that the depth network's
        ONNX Runtime session for that size is made too (see core.depth.estimator).
        """
        if settings.segment == "rembg":
            from ..masks.remover import BackgroundRemover

            if self._remover is None:
                self._remover = BackgroundRemover()
            self._remover.load(settings.rembg_model, settings.rembg_normalize, settings.quantize)
        if settings.depth == "model":
            self.depth_estimator(settings).load(image_size)

    def text_to_image(self, model: str | None = None, model_dir=None, device: str = "auto"):
        """The text-to-image model for these options, loaded on first use and kept."""
        from ..networks.text2image import DEFAULT_T2I_MODEL, TextToImage

        key = (model or DEFAULT_T2I_MODEL, str(model_dir) if model_dir else None, device)
        if key not in self._generators:
            self._generators[key] = TextToImage(key[0], model_dir=model_dir, device=device)
        return self._generators[key]

    def _cache(self):
        from ..storage.cache import DiskCache
        from ..storage.paths import cache_dir

        return DiskCache(self._cache_dir or cache_dir())

    # -- the run ------------------------------------------------------------------------
    def run(
        self,
        image: str | Path | np.ndarray | Photo,
        settings: Settings | None = None,
        *,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
    ) -> Result:
        """Photo (path, array or :class:`Photo`) to a coloured mesh in the output frame."""
        s = settings or Settings()
        timings: dict[str, float] = {}
        warnings: list[str] = []
        info: dict = {"cache": {}}
        cache = self._cache() if s.cache else None

        def step(stage: str, fraction: float, message: str = "") -> None:
            if cancel is not None and cancel():
                raise Cancelled()
            if progress is not None:
                progress(stage, fraction, message or STAGE_LABELS[stage])

        def timed(stage: str, fn):
            step(stage, 0.0)
            t0 = time.perf_counter()
            out = fn()
            timings[stage] = time.perf_counter() - t0
            step(stage, 1.0)
            return out

        photo = timed("load", lambda: self._load(image, s))
        # Open3D is not imported in a background thread while the networks load: a Ray
        # worker doing that crashed once (SIGSEGV while both threads loaded native
        # libraries), and a crash costs far more than the second it saved.
        if self.concurrent and s.depth == "model" and s.segment != "none":
            from .overlap import segment_beside_depth

            mask, prediction = segment_beside_depth(
                lambda report: self._segment(photo, s, cache, info, report),
                lambda report: self._predict(photo, s, cache, info, report, warnings),
                step,
                cancel,
                timings,
            )
            info["networks_concurrent"] = True
        else:
            mask = timed("segment", lambda: self._segment(photo, s, cache, info, step))
            prediction = timed(
                "depth", lambda: self._predict(photo, s, cache, info, step, warnings)
            )

        # camera: the user's numbers are for the full-size photo; EXIF too
        predicted_fov = None
        if prediction is not None and prediction.focal_px:
            predicted_fov = _fov_from_focal(prediction.focal_px, *photo.size)
        K0, source = choose_intrinsics(
            *photo.original_size,
            fov_deg=s.fov,
            focal_px=s.focal_px,
            exif_fov_deg=photo.exif_fov_deg,
            predicted_fov_deg=predicted_fov,
        )
        K = K0.scaled(*photo.size)

        def make_depth():
            from ..depth.maps import depth_from_prediction, inflate_depth, load_depth_map

            if s.depth == "map":
                depth, warn = load_depth_map(s.depth_map, photo.size, s.depth_scale)
                warnings.extend(warn)
                info.update(depth_source="map", depth_model=str(s.depth_map), depth_output="metric")
                return depth, True
            if s.depth == "inflate":
                info.update(depth_source="inflate", depth_model=None, depth_output="relative")
                return inflate_depth(mask, K), False
            return depth_from_prediction(prediction, mask, K)

        t0 = time.perf_counter()
        depth, metric = make_depth()
        timings["depth"] += time.perf_counter() - t0

        def make_cloud():
            from ..surface.cloud import point_cloud

            key = _cloud_key(depth, photo.rgb, mask, K, s)
            info["cache"]["pointcloud"] = key in self._clouds
            if key in self._clouds:
                self._clouds.move_to_end(key)
                return self._clouds[key]
            cloud = point_cloud(
                depth,
                photo.rgb,
                mask,
                K,
                outlier_neighbors=s.outlier_neighbors,
                outlier_std=s.outlier_std,
            )
            self._clouds[key] = (cloud, {})
            while len(self._clouds) > KEEP_CLOUDS:
                self._clouds.popitem(last=False)
            return self._clouds[key]

        cloud, solids = timed("pointcloud", make_cloud)
        info["points"] = int(len(cloud.points))

        def make_mesh():
            from ..surface.build import reconstruct_surface

            def mesh_progress(fraction: float, message: str = "") -> None:
                step("mesh", min(max(fraction, 0.0), 0.99), message or STAGE_LABELS["mesh"])

            mesh_cam, mesh_info = reconstruct_surface(
                cloud,
                depth,
                photo.rgb,
                mask,
                K,
                method=s.mesh,
                closed=not s.open,
                poisson_depth=s.poisson_depth,
                thickness=s.thickness,
                target_faces=s.target_faces,
                smooth=s.smooth,
                shape=s.shape,
                progress=mesh_progress,
                solids=solids,
            )
            if s.texture:
                t0 = time.perf_counter()
                step("mesh", 0.99, "Texturing from the photo")
                mesh_cam.texture = self._texture(mesh_cam, photo, mask, K, s)
                timings["texture"] = time.perf_counter() - t0
            return mesh_cam, mesh_info

        mesh_cam, mesh_info = timed("mesh", make_mesh)
        timings["mesh"] -= timings.get("texture", 0.0)
        warnings.extend(mesh_info.pop("warnings", []) or [])
        from ..storage.datafolder import take_warnings

        warnings.extend(take_warnings())  # a damaged or read-only data folder, said once
        info["cache"]["surface"] = bool(mesh_info.pop("poisson_reused", False))
        info.update({f"mesh_{k}": v for k, v in mesh_info.items()})
        mesh, camera = to_output_frame(mesh_cam, K, source)
        return Result(mesh, camera, photo, mask, depth, metric, s, timings, warnings, info)

    # -- text prompts -------------------------------------------------------------------
    def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        model_dir: str | Path | None = None,
        device: str = "auto",
        seed: int = 0,
        steps: int | None = None,
        width: int | None = None,
        height: int | None = None,
        raw_prompt: bool = False,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
    ) -> tuple[np.ndarray, dict]:
        """Picture for a text prompt: (H, W, 3) uint8 RGB and what made it (see core.networks.text2image).

        ``progress`` is called as for :meth:`run`, with the stage "generate".
        """
        from ..networks.text2image import check_prompt, require_diffusers

        check_prompt(prompt)
        require_diffusers()
        gen = self.text_to_image(model, model_dir, device)
        label = STAGE_LABELS["generate"]

        def report(fraction: float, message: str) -> None:
            if cancel is not None and cancel():
                raise Cancelled("Image generation cancelled.")
            if progress is not None:
                progress("generate", fraction, message)

        if not gen.loaded:
            report(0.0, f"Loading {model_dir or gen.model_id}")
            gen.load()

        def on_step(done: int, total: int) -> None:
            # the decoder runs after the last step: keep the last tenth for it
            message = f"{label} ({done}/{total})" if done < total else "Decoding image"
            report(0.05 + 0.85 * done / total, message)

        rgb, info = gen.generate(
            prompt,
            seed=seed,
            steps=steps,
            width=width,
            height=height,
            raw_prompt=raw_prompt,
            progress=on_step,
            cancel=cancel,
        )
        report(1.0, label)
        return rgb, info

    def run_prompt(
        self,
        prompt: str,
        picture: str | Path,
        settings: Settings | None = None,
        *,
        overwrite: bool = False,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
        **generate_options,
    ) -> Result:
        """Text prompt to mesh: generate a picture, save it as ``picture`` (PNG), reconstruct it.

        The picture goes through exactly the photo pipeline (:meth:`run` on the file).
        If anything fails or is cancelled, the picture is removed again, so an
        unfinished run leaves no files. ``generate_options`` are :meth:`generate`'s
        (model, model_dir, seed, steps, width, height, raw_prompt); the device is
        the settings'. The result's ``info["generated"]`` says how the picture was made.
        """
        from ..files.atomic import check_target
        from ..networks.text2image import save_picture

        s = settings or Settings()
        picture = Path(picture)
        check_target(picture, overwrite=overwrite)
        t0 = time.perf_counter()
        rgb, info = self.generate(
            prompt, device=s.device, progress=progress, cancel=cancel, **generate_options
        )
        seconds = time.perf_counter() - t0
        save_picture(rgb, picture, info, overwrite=overwrite)
        try:
            result = self.run(picture, s, progress=progress, cancel=cancel)
        except BaseException:
            picture.unlink(missing_ok=True)
            raise
        result.info["generated"] = {**info, "picture": str(picture)}
        result.timings = {"generate": seconds, **result.timings}
        return result

    # -- stages -------------------------------------------------------------------------
    def _texture(self, mesh_cam: Mesh, photo: Photo, mask, K, s: Settings):
        from ..files.photos import load_original
        from ..surface.texture import bake_texture

        def original(scale: float):
            # kept for re-meshes of the same photo while it holds the resolution asked
            if self._original is not None and self._original[0] == photo.digest:
                image = self._original[1]
                if image is None or image.width >= scale * photo.original_size[0] - 1:
                    return image
                del image
            self._original = None  # the old one goes before the new one is decoded
            self._original = (photo.digest, load_original(photo, scale))
            return self._original[1]

        return bake_texture(
            mesh_cam,
            photo.rgb,
            mask,
            K,
            original,
            size=s.texture_size,
            original_size=photo.original_size,
        )

    @staticmethod
    def _load(image, s: Settings) -> Photo:
        if isinstance(image, Photo):
            return image
        if isinstance(image, np.ndarray):
            return photo_from_array(image, s.max_size)
        return load_image(image, s.max_size)

    def _segment(self, photo: Photo, s: Settings, cache, info: dict, step=None) -> np.ndarray:
        from ..masks.cleanup import clean_mask

        if photo.alpha_mask is not None:
            info["mask_source"] = "alpha channel"
            return clean_mask(photo.alpha_mask, erode_px=0)
        if s.segment == "none":
            info["mask_source"] = "none (whole image)"
            return np.ones(photo.rgb.shape[:2], dtype=bool)
        key = s.mask_key()
        if cache is not None:
            hit = cache.get("mask", photo.digest, key)
            if hit is not None and hit["mask"].shape == photo.rgb.shape[:2]:
                info["cache"]["mask"] = True
                info["mask_source"] = str(hit["source"])
                return hit["mask"].astype(bool)
        if s.segment == "key":
            from ..masks.key import key_mask

            mask = clean_mask(key_mask(photo.rgb))
            source = "colour key + GrabCut"
        else:
            from ..masks.remover import BackgroundRemover

            if self._remover is None:
                self._remover = BackgroundRemover()
            probability = self._remover.mask(
                photo.rgb,
                s.rembg_model,
                s.rembg_normalize,
                s.quantize,
                message=None if step is None else (lambda text: step("segment", 0.5, text)),
            )
            mask = clean_mask(probability >= 0.5)
            info["mask_network"] = self._remover.quantization()
            source = f"rembg {Path(s.rembg_model).name if s.rembg_model.endswith('.onnx') else s.rembg_model}"
        info["mask_source"] = source
        info["cache"]["mask"] = False
        if cache is not None:
            cache.put("mask", photo.digest, key, {"mask": mask, "source": np.array(source)})
        return mask

    def _predict(self, photo: Photo, s: Settings, cache, info: dict, step, warnings: list):
        if s.depth != "model":
            return None
        from ..depth.estimator import DepthPrediction

        key = s.depth_key()
        if cache is not None:
            hit = cache.get("depth", photo.digest, key)
            if hit is not None and hit["values"].shape == photo.rgb.shape[:2]:
                info["cache"]["depth"] = True
                focal = float(hit["focal_px"]) if np.isfinite(hit["focal_px"]) else None
                info.update(
                    depth_source="model",
                    depth_model=s.depth_model,
                    device=str(hit["device"]),
                    depth_output=str(hit["kind"]),
                )
                return DepthPrediction(hit["values"], str(hit["kind"]), focal)
        estimator = self.depth_estimator(s)
        if not estimator.loaded:
            step("depth", 0.05, f"Loading {s.model_dir or s.depth_model}")
        estimator.load(photo.size)
        step("depth", 0.3, f"Running {s.depth_model}")
        seen = len(estimator.warnings)
        pred = estimator.predict(photo.rgb, message=lambda text: step("depth", 0.6, text))
        warnings.extend(estimator.warnings[seen:])
        info["cache"]["depth"] = False
        info.update(
            depth_source="model",
            depth_model=s.depth_model,
            device=estimator.device,
            depth_output=pred.kind,
            depth_backend=estimator.backend,
            depth_backend_note=estimator.backend_note,
            depth_forward_s=estimator.last_forward_s,
        )
        if cache is not None:
            cache.put(
                "depth",
                photo.digest,
                key,
                {
                    "values": pred.values,
                    "kind": np.array(pred.kind),
                    "device": np.array(estimator.device),
                    "focal_px": np.array(pred.focal_px if pred.focal_px else np.nan),
                },
            )
        return pred


def _fov_from_focal(focal_px: float, width: int, height: int) -> float:
    return math.degrees(2 * math.atan(max(width, height) / (2 * focal_px)))


_default: Pipeline | None = None


def reconstruct(image, settings: Settings | None = None, **kwargs) -> Result:
    """One-call reconstruction with a process-wide :class:`Pipeline` (models stay loaded)."""
    global _default
    if _default is None:
        _default = Pipeline()
    return _default.run(image, settings, **kwargs)


def _cloud_key(depth, rgb, mask, intrinsics, settings: Settings) -> bytes:
    """A digest of everything :func:`core.surface.cloud.point_cloud` reads."""
    digest = hashlib.blake2b(digest_size=20)
    for array in (depth, rgb, mask):
        a = np.ascontiguousarray(array)
        digest.update(f"{a.dtype}{a.shape}".encode())
        digest.update(a.data)
    digest.update(repr((intrinsics, settings.outlier_neighbors, settings.outlier_std)).encode())
    return digest.digest()
