"""Images: /imagine for whole communities, from the request to the posted picture.

Owns the image service (job life cycle, resume after restart), the request options, paced progress
messages and the fair queue. Uses credits (to pay) and display (to pace its progress edits).
"""

from bot.images.options import SIZE_PRESETS, ImageOptions, parse_imagine_args, to_params, usage_text
from bot.images.service import ImageClient, ImageConfig, ImageService, ImageSurface, SurfaceFactory

__all__ = [
    "SIZE_PRESETS",
    "ImageClient",
    "ImageConfig",
    "ImageOptions",
    "ImageService",
    "ImageSurface",
    "SurfaceFactory",
    "parse_imagine_args",
    "to_params",
    "usage_text",
]
