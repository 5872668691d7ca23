"""The model zoo: classic GANs built from :mod:`pygan.nn`, so the ops backend selected with
``pygan.ops.use_backend`` / ``set_backend`` runs inside every model.

    gan.Generator, gan.Discriminator                   MLP GAN for 28x28 digits (Goodfellow et al. 2014)
    dcgan.Generator, dcgan.Discriminator               DCGAN, 32x32 / 64x64 (Radford et al. 2016);
                                                       with the LSGAN losses it is LSGAN (Mao et al. 2017)
    wgan.Generator, wgan.Critic                        WGAN / WGAN-GP critics without batch norm
                                                       (Arjovsky et al. 2017; Gulrajani et al. 2017)
    cyclegan.ResnetGenerator, cyclegan.PatchDiscriminator, cyclegan.ImagePool
                                                       CycleGAN (Zhu et al. 2017)
    progan.Generator, progan.Discriminator             ProGAN (Karras et al. 2018), G(z, alpha, steps)

The losses are in :mod:`pygan.losses`.
"""

from . import cyclegan, dcgan, gan, progan, wgan

__all__ = ["cyclegan", "dcgan", "gan", "progan", "wgan"]
