"""StyleGAN2: the generator the StyleGAN-family swap cores share, and the checkpoint importer.

* :mod:`vidswap.swap.stylegan.layers`    -- modulated convolution, FIR resampling, equalised-lr layers
* :mod:`vidswap.swap.stylegan.generator` -- mapping + synthesis with W / W+ / S-space access
* :mod:`vidswap.swap.stylegan.importer`  -- NVIDIA pickles read without running their code; safetensors I/O
* :mod:`vidswap.swap.stylegan.align`     -- the FFHQ crop (a CropSpec, so paste-back is the compositor's)
"""

from vidswap.swap.stylegan.generator import StyleGAN2Generator, StyleGANConfig

__all__ = ["StyleGAN2Generator", "StyleGANConfig"]
