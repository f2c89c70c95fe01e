"""FaceLab: the embedded demo world with ground truth.

- `factors`: the 19 named true factors (ranges, meanings, prior, validation)
- `render`: factors -> images in [-1, 1], part labels, landmarks (torch, CPU)
- `latent`: the fixed map phi: z (512) -> factors (ground truth only; the audit
  must never import it)
- `sheet`: contact sheets

Import submodules directly (`from iceaudit.facelab.render import render`);
this package imports nothing heavy.
"""
