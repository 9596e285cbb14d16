"""``lowlight app``: a local web page to enhance photos in the browser.

:mod:`lowlight.app.server` is the FastAPI app (uploads, a one-worker job queue,
before/after previews, full-resolution downloads identical to ``lowlight enhance``);
``page.html`` is its one static page. Needs the ``app`` extra (FastAPI, uvicorn).
"""
