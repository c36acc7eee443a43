"""``vidswap train`` with ``method: stylegan-glo``: a small StyleGAN2 generator fitted to a face set by GLO
(Bojanowski et al. 2018, "Optimizing the Latent Space of Generative Networks": the generator and one learnable
W+ code per training image, trained on reconstruction alone; no discriminator)."""
