"""sd-webui-depth2img engine: depth conditioning for Stable Diffusion 2 depth models.

Plain torch/numpy/PIL; imports nothing from the WebUI, so it is usable and testable on its own.
"""

from .conditioning import apply_edits, depth_to_conditioning
from .depth.cache import DepthCache, image_digest
from .depth.estimator import DepthEstimator, run_depth_model
from .depth.midas_input import midas_input_size, prepare_midas_input
from .io.depthmap import colorize, conditioning_to_png16, conditioning_to_previews, depth_to_tensor, load_depth_map
from .io.images import image_to_tensor, open_image
from .normalise import rescale_per_image
from .settings import DepthSettings

__version__ = "0.1.0"

__all__ = [
    "DepthCache",
    "DepthEstimator",
    "DepthSettings",
    "apply_edits",
    "colorize",
    "conditioning_to_png16",
    "conditioning_to_previews",
    "depth_to_conditioning",
    "depth_to_tensor",
    "image_digest",
    "image_to_tensor",
    "load_depth_map",
    "midas_input_size",
    "open_image",
    "prepare_midas_input",
    "rescale_per_image",
    "run_depth_model",
]
