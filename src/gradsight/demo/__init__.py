"""The shapes benchmark: generated images with ground-truth masks and a small demo CNN.

``gradsight.demo.shapes`` (numpy + Pillow only) renders 64x64 RGB images of one
labelled shape (circle, square, triangle, star or cross) on a textured background
with distractors, together with the pixel mask of the shape.
``gradsight.demo.model`` (needs torch) holds ``ShapesNet`` and ``load_demo_model``,
which loads the bundled trained weights.
"""
