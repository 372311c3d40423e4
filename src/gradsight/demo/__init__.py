"""The bundled demo: generated data, trained models, their registry, the demo runner.

- ``gradsight.demo.shapes`` (numpy + Pillow only) renders 64x64 RGB images of one
  labelled shape (circle, square, triangle, star or cross) on a textured background
  with distractors, together with the pixel mask of the shape;
  ``gradsight.demo.shapes_detect`` draws several shapes per image, with boxes;
  ``gradsight.demo.mlp`` has the two-moons points.
- ``gradsight.demo.model`` (needs torch) holds ``ShapesNet`` and ``load_demo_model``,
  which loads the bundled trained weights; ``keras_model`` its Keras twin;
  ``fine_model`` the same CNN with a 16x16 last stage (``demo-fine``, PyTorch only); ``model.load_loc_model`` the
  demo CNN fine-tuned with a localisation signal (``demo-loc``; Keras twin ``keras_model.load_keras_loc_model``);
  ``detector`` / ``keras_detector`` the tiny YOLO detector; ``mlp`` the 2-D MLP;
  ``vit`` the small vision transformer ``ShapesViT`` (PyTorch only).
- ``gradsight.demo.registry`` names the bundled models (``demo``, ``demo-detector``,
  ``demo-mlp``, ``demo-vit``, ``demo-fine``, ``demo-loc``) for every command of the CLI and :func:`gradsight.models.load_model`.
- ``gradsight.demo.runner`` runs every method on a few images (``gradsight demo``).

Importing this package imports nothing; each module loads what it needs.
"""
