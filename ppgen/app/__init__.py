"""The face: the ``ppgen`` command line, the tour report and its chapters, the model registry, plots.

Nothing below ``app`` imports it. ``ppgen.plots`` names :mod:`ppgen.app.plots`.
"""
