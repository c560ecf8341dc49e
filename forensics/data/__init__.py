"""Data: labelled image sets, the transforms models see them through, the trigger, and the forms owners keep data in.

* :mod:`.images` - :class:`ImageSet` (in memory, on disk or encoded), image folders, synthetic queries;
* :mod:`.transforms` - timm's eval transform, augmented views, batches, the BadNets-style :class:`Trigger`;
* :mod:`.archives` - safe extraction of an uploaded zip;
* :mod:`.formats` - Hugging Face datasets, parquet / arrow tables, imagefolder metadata and CSV listings.
"""
from .archives import extract_zip
from .formats import load_data_source, parse_data_source
from .images import ImageSet, concat, load_image_folder, synthetic_images
from .transforms import EvalTransform, Trigger, iter_batches

__all__ = ["EvalTransform", "ImageSet", "Trigger", "concat", "extract_zip", "iter_batches", "load_data_source",
           "load_image_folder", "parse_data_source", "synthetic_images"]
