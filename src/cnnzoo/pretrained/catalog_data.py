"""Published ImageNet-1k classification weights of torchvision, as plain data.

Why one module: it is one table of facts (38 entries of 8 keys), read by one reader
(:mod:`cnnzoo.pretrained.catalog`); split, it would only be harder to check against its source.

These are facts recorded from torchvision's weights enums (``<Model>_Weights``
with ``IMAGENET1K_V1`` / ``IMAGENET1K_V2`` members, torchvision >= 0.13) for the
architectures cnnzoo shares with torchvision.  Nothing here imports torchvision.

Keys of every entry:

``url``
    download URL exactly as in the enum; the file name is what ``torch.hub``
    stores in its cache and ends with the SHA-256 prefix of the file.
``resize_size``, ``crop_size``, ``interpolation``
    the enum's inference preset ``ImageClassification(crop_size=...,
    resize_size=..., interpolation=...)``: resize the short side to
    ``resize_size`` (default 256), centre-crop ``crop_size``;
    ``interpolation`` is torchvision's ``InterpolationMode`` value,
    ``"bilinear"`` (the preset's default) or ``"bicubic"``.
``acc1``, ``acc5``
    the meta's ``_metrics["ImageNet-1K"]["acc@1"]`` / ``["acc@5"]``.
``num_params``
    the meta's ``num_params``.
``recipe``
    the meta's ``recipe`` URL (the per-entry value, or the module's
    ``_COMMON_META`` value where the entry does not override it).

Normalisation: every entry below uses the ``ImageClassification`` defaults,
mean ``(0.485, 0.456, 0.406)`` and std ``(0.229, 0.224, 0.225)``, so no entry
carries ``mean``/``std`` keys.  (torchvision's googlenet and inception_v3
builders additionally set ``transform_input=True`` when loading these weights;
the preset's mean/std are still the ImageNet ones.)  DenseNet checkpoints use
the old ``denselayerN.norm.1``-style key names; torchvision's loader renames
them (``norm.1`` -> ``norm1`` etc.) before ``load_state_dict``.

Skipped on purpose: ``VGG16_Weights.IMAGENET1K_FEATURES`` (features-only,
classifier filled with NaNs, different mean/std) and all SWAG / non-1k entries.

Sources (read with the public-code index; the pytorch/vision files the index
stores under torchvision/models/ for these models are pre-0.13 versions
without weights enums, e.g. resnet.py@054e54c573ba46e5b9c63f1eea3ad4d103afbea2,
vgg.py@1c1feb57a2522dfccdac4a7984897818ee84cbd9,
efficientnet.py@53938452198c9433ef9054a801347cff533bdc93, so the enum data was
taken from verbatim copies of recent torchvision files, i.e. the versions with
``@register_model()``, ``_ops``/``_file_size`` meta and
``get_state_dict(..., check_hash=True)``):

* pytorch/vision torchvision/transforms/_presets.py
  @0446e68eac403bebd0971d5417a9bf8df852ba29 (ImageClassification defaults:
  resize_size=256, bilinear, ImageNet mean/std).
* resnet.py: fork Rilomilo/torchvision@1673c5a0a09fe970a10c9f6926f6b4180c12768e,
  cross-checked against fork tpet/torchvision@793b358441421d8b524c904ea6568c620d38270f.
* vgg.py, alexnet.py, googlenet.py, inception.py, densenet.py, squeezenet.py:
  verbatim recent torchvision copies in the index (file ids 262925866,
  861271633, 1122296856, 36567354406, 774606876, 308597615), cross-checked
  against the per-class extracts in Ace1928/eidosian_forge and the
  pytorch/vision torchvision/prototype/models/*.py ancestors.
* efficientnet.py: per-class extracts of recent torchvision in
  Ace1928/eidosian_forge (archive_forge/src/archive_forge/class_EfficientNet_B0_Weights.py
  @4c694972b1f46e9cd8288d056c08763ef266f498, B3/B6 @846b2a1d546cf74c2776b978f7a921aa3c40efc8,
  archive_forge/code/class_EfficientNet_B{1,2,4,5}_Weights.py
  @a086f1f23618c03567f31fcdc62054b5c4b4bb08).  B7 (and the V1 recipe in
  ``_COMMON_META_V1``) come from an older torchvision copy (same meta, before
  the V1 files were renamed to hashes that match their contents) plus several
  URL tables agreeing on ``efficientnet_b7_lukemelas-c5b4e57e.pth``.
* ImageNet class names (imagenet_classes.txt next to this file):
  ``_IMAGENET_CATEGORIES`` from pytorch/vision
  torchvision/prototype/models/_meta.py@2fd1c67e059ef0d4b65e09334c3acdaa9a794135,
  identical in length and content to the recent torchvision/models/_meta.py copy.
"""

_TV = "https://github.com/pytorch/vision"
_REF = _TV + "/tree/main/references/classification"

WEIGHTS: dict[str, dict[str, dict]] = {
    # ------------------------------------------------------------------ AlexNet
    "alexnet": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 56.522,
            "acc5": 79.066,
            "num_params": 61100840,
            "recipe": _REF + "#alexnet-and-vgg",
        },
    },
    # ---------------------------------------------------------------------- VGG
    "vgg11": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/vgg11-8a719046.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 69.020,
            "acc5": 88.628,
            "num_params": 132863336,
            "recipe": _REF + "#alexnet-and-vgg",
        },
    },
    "vgg11_bn": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/vgg11_bn-6002323d.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 70.370,
            "acc5": 89.810,
            "num_params": 132868840,
            "recipe": _REF + "#alexnet-and-vgg",
        },
    },
    "vgg13": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/vgg13-19584684.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 69.928,
            "acc5": 89.246,
            "num_params": 133047848,
            "recipe": _REF + "#alexnet-and-vgg",
        },
    },
    "vgg13_bn": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/vgg13_bn-abd245e5.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 71.586,
            "acc5": 90.374,
            "num_params": 133053736,
            "recipe": _REF + "#alexnet-and-vgg",
        },
    },
    "vgg16": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/vgg16-397923af.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 71.592,
            "acc5": 90.382,
            "num_params": 138357544,
            "recipe": _REF + "#alexnet-and-vgg",
        },
    },
    "vgg16_bn": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/vgg16_bn-6c64b313.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 73.360,
            "acc5": 91.516,
            "num_params": 138365992,
            "recipe": _REF + "#alexnet-and-vgg",
        },
    },
    "vgg19": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 72.376,
            "acc5": 90.876,
            "num_params": 143667240,
            "recipe": _REF + "#alexnet-and-vgg",
        },
    },
    "vgg19_bn": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/vgg19_bn-c79401a0.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 74.218,
            "acc5": 91.842,
            "num_params": 143678248,
            "recipe": _REF + "#alexnet-and-vgg",
        },
    },
    # -------------------------------------------------------- GoogLeNet / Inception
    "googlenet": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/googlenet-1378be20.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 69.778,
            "acc5": 89.530,
            "num_params": 6624904,
            "recipe": _REF + "#googlenet",
        },
    },
    "inception_v3": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
            "resize_size": 342,
            "crop_size": 299,
            "interpolation": "bilinear",
            "acc1": 77.294,
            "acc5": 93.450,
            "num_params": 27161264,
            "recipe": _REF + "#inception-v3",
        },
    },
    # ------------------------------------------------------------- ResNet / ResNeXt
    "resnet18": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 69.758,
            "acc5": 89.078,
            "num_params": 11689512,
            "recipe": _REF + "#resnet",
        },
    },
    "resnet34": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/resnet34-b627a593.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 73.314,
            "acc5": 91.420,
            "num_params": 21797672,
            "recipe": _REF + "#resnet",
        },
    },
    "resnet50": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 76.130,
            "acc5": 92.862,
            "num_params": 25557032,
            "recipe": _REF + "#resnet",
        },
        "IMAGENET1K_V2": {
            "url": "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
            "resize_size": 232,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 80.858,
            "acc5": 95.434,
            "num_params": 25557032,
            "recipe": _TV + "/issues/3995#issuecomment-1013906621",
        },
    },
    "resnet101": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/resnet101-63fe2227.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 77.374,
            "acc5": 93.546,
            "num_params": 44549160,
            "recipe": _REF + "#resnet",
        },
        "IMAGENET1K_V2": {
            "url": "https://download.pytorch.org/models/resnet101-cd907fc2.pth",
            "resize_size": 232,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 81.886,
            "acc5": 95.780,
            "num_params": 44549160,
            "recipe": _TV + "/issues/3995#new-recipe",
        },
    },
    "resnet152": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/resnet152-394f9c45.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 78.312,
            "acc5": 94.046,
            "num_params": 60192808,
            "recipe": _REF + "#resnet",
        },
        "IMAGENET1K_V2": {
            "url": "https://download.pytorch.org/models/resnet152-f82ba261.pth",
            "resize_size": 232,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 82.284,
            "acc5": 96.002,
            "num_params": 60192808,
            "recipe": _TV + "/issues/3995#new-recipe",
        },
    },
    "resnext50_32x4d": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/resnext50_32x4d-7cdf4587.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 77.618,
            "acc5": 93.698,
            "num_params": 25028904,
            "recipe": _REF + "#resnext",
        },
        "IMAGENET1K_V2": {
            "url": "https://download.pytorch.org/models/resnext50_32x4d-1a0047aa.pth",
            "resize_size": 232,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 81.198,
            "acc5": 95.340,
            "num_params": 25028904,
            "recipe": _TV + "/issues/3995#new-recipe",
        },
    },
    "resnext101_32x8d": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/resnext101_32x8d-8ba56ff5.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 79.312,
            "acc5": 94.526,
            "num_params": 88791336,
            "recipe": _REF + "#resnext",
        },
        "IMAGENET1K_V2": {
            "url": "https://download.pytorch.org/models/resnext101_32x8d-110c445d.pth",
            "resize_size": 232,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 82.834,
            "acc5": 96.228,
            "num_params": 88791336,
            "recipe": _TV + "/issues/3995#new-recipe-with-fixres",
        },
    },
    # ----------------------------------------------------------------- DenseNet
    "densenet121": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/densenet121-a639ec97.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 74.434,
            "acc5": 91.972,
            "num_params": 7978856,
            "recipe": _TV + "/pull/116",
        },
    },
    "densenet161": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/densenet161-8d451a50.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 77.138,
            "acc5": 93.560,
            "num_params": 28681000,
            "recipe": _TV + "/pull/116",
        },
    },
    "densenet169": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/densenet169-b2777c0a.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 75.600,
            "acc5": 92.806,
            "num_params": 14149480,
            "recipe": _TV + "/pull/116",
        },
    },
    "densenet201": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/densenet201-c1103571.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 76.896,
            "acc5": 93.370,
            "num_params": 20013928,
            "recipe": _TV + "/pull/116",
        },
    },
    # --------------------------------------------------------------- SqueezeNet
    "squeezenet1_0": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/squeezenet1_0-b66bff10.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 58.092,
            "acc5": 80.420,
            "num_params": 1248424,
            "recipe": _TV + "/pull/49#issuecomment-277560717",
        },
    },
    "squeezenet1_1": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bilinear",
            "acc1": 58.178,
            "acc5": 80.624,
            "num_params": 1235496,
            "recipe": _TV + "/pull/49#issuecomment-277560717",
        },
    },
    # ------------------------------------------------------------- EfficientNet
    "efficientnet_b0": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth",
            "resize_size": 256,
            "crop_size": 224,
            "interpolation": "bicubic",
            "acc1": 77.692,
            "acc5": 93.532,
            "num_params": 5288548,
            "recipe": _REF + "#efficientnet-v1",
        },
    },
    "efficientnet_b1": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/efficientnet_b1_rwightman-bac287d4.pth",
            "resize_size": 256,
            "crop_size": 240,
            "interpolation": "bicubic",
            "acc1": 78.642,
            "acc5": 94.186,
            "num_params": 7794184,
            "recipe": _REF + "#efficientnet-v1",
        },
        "IMAGENET1K_V2": {
            "url": "https://download.pytorch.org/models/efficientnet_b1-c27df63c.pth",
            "resize_size": 255,
            "crop_size": 240,
            "interpolation": "bilinear",
            "acc1": 79.838,
            "acc5": 94.934,
            "num_params": 7794184,
            "recipe": _TV + "/issues/3995#new-recipe-with-lr-wd-crop-tuning",
        },
    },
    "efficientnet_b2": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/efficientnet_b2_rwightman-c35c1473.pth",
            "resize_size": 288,
            "crop_size": 288,
            "interpolation": "bicubic",
            "acc1": 80.608,
            "acc5": 95.310,
            "num_params": 9109994,
            "recipe": _REF + "#efficientnet-v1",
        },
    },
    "efficientnet_b3": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/efficientnet_b3_rwightman-b3899882.pth",
            "resize_size": 320,
            "crop_size": 300,
            "interpolation": "bicubic",
            "acc1": 82.008,
            "acc5": 96.054,
            "num_params": 12233232,
            "recipe": _REF + "#efficientnet-v1",
        },
    },
    "efficientnet_b4": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/efficientnet_b4_rwightman-23ab8bcd.pth",
            "resize_size": 384,
            "crop_size": 380,
            "interpolation": "bicubic",
            "acc1": 83.384,
            "acc5": 96.594,
            "num_params": 19341616,
            "recipe": _REF + "#efficientnet-v1",
        },
    },
    "efficientnet_b5": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/efficientnet_b5_lukemelas-1a07897c.pth",
            "resize_size": 456,
            "crop_size": 456,
            "interpolation": "bicubic",
            "acc1": 83.444,
            "acc5": 96.628,
            "num_params": 30389784,
            "recipe": _REF + "#efficientnet-v1",
        },
    },
    "efficientnet_b6": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/efficientnet_b6_lukemelas-24a108a5.pth",
            "resize_size": 528,
            "crop_size": 528,
            "interpolation": "bicubic",
            "acc1": 84.008,
            "acc5": 96.916,
            "num_params": 43040704,
            "recipe": _REF + "#efficientnet-v1",
        },
    },
    "efficientnet_b7": {
        "IMAGENET1K_V1": {
            "url": "https://download.pytorch.org/models/efficientnet_b7_lukemelas-c5b4e57e.pth",
            "resize_size": 600,
            "crop_size": 600,
            "interpolation": "bicubic",
            "acc1": 84.122,
            "acc5": 96.908,
            "num_params": 66347960,
            "recipe": _REF + "#efficientnet-v1",
        },
    },
}

# torchvision's ``<Model>_Weights.DEFAULT`` alias for each model.
DEFAULT: dict[str, str] = {
    "alexnet": "IMAGENET1K_V1",
    "vgg11": "IMAGENET1K_V1",
    "vgg11_bn": "IMAGENET1K_V1",
    "vgg13": "IMAGENET1K_V1",
    "vgg13_bn": "IMAGENET1K_V1",
    "vgg16": "IMAGENET1K_V1",
    "vgg16_bn": "IMAGENET1K_V1",
    "vgg19": "IMAGENET1K_V1",
    "vgg19_bn": "IMAGENET1K_V1",
    "googlenet": "IMAGENET1K_V1",
    "inception_v3": "IMAGENET1K_V1",
    "resnet18": "IMAGENET1K_V1",
    "resnet34": "IMAGENET1K_V1",
    "resnet50": "IMAGENET1K_V2",
    "resnet101": "IMAGENET1K_V2",
    "resnet152": "IMAGENET1K_V2",
    "resnext50_32x4d": "IMAGENET1K_V2",
    "resnext101_32x8d": "IMAGENET1K_V2",
    "densenet121": "IMAGENET1K_V1",
    "densenet161": "IMAGENET1K_V1",
    "densenet169": "IMAGENET1K_V1",
    "densenet201": "IMAGENET1K_V1",
    "squeezenet1_0": "IMAGENET1K_V1",
    "squeezenet1_1": "IMAGENET1K_V1",
    "efficientnet_b0": "IMAGENET1K_V1",
    "efficientnet_b1": "IMAGENET1K_V2",
    "efficientnet_b2": "IMAGENET1K_V1",
    "efficientnet_b3": "IMAGENET1K_V1",
    "efficientnet_b4": "IMAGENET1K_V1",
    "efficientnet_b5": "IMAGENET1K_V1",
    "efficientnet_b6": "IMAGENET1K_V1",
    "efficientnet_b7": "IMAGENET1K_V1",
}
