"""The print summary as a PDF, rendered on the server by WeasyPrint from local files only.

The HTML is the print page itself, so paper and PDF show the same thing.
Stylesheets are read from disk through Django's staticfiles finders (or the
collected static root); any other URL (another host, a file path, data) is
refused, so rendering never touches the network.

WeasyPrint (and Pango under it) is imported on first use: it takes about a
second to load, and nothing but the PDF needs it.
"""

from __future__ import annotations

import functools
import logging
import mimetypes
import posixpath
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage

# Relative URLs in the page resolve against this address; nothing is ever fetched from it.
BASE_URL = "https://print.invalid/"
PAPER_SIZES = {"a4": "A4", "letter": "letter"}
DEFAULT_PAPER = "a4"
PRINT_STYLESHEET = "css/print.css"


# WeasyPrint announces each rendering step at INFO: a dozen lines per PDF in the server
# log. Keep them out unless the logging settings name that logger.
_progress_log = logging.getLogger("weasyprint.progress")
if _progress_log.level == logging.NOTSET:
    _progress_log.setLevel(logging.WARNING)


class RefusedURL(ValueError):
    """The page asked for something that is not one of our static files."""


def render_pdf(html: str, *, paper: str = DEFAULT_PAPER) -> bytes:
    """The PDF of a print page. `paper` is "a4" or "letter"; the layout fits both.

    The page links no stylesheet when rendered for the PDF (`for_pdf`): print.css is
    given here, parsed once per process, which saves a good part of the rendering time.
    """
    return render_document(html, paper=paper).write_pdf()


def render_document(html: str, *, paper: str = DEFAULT_PAPER):
    """The laid-out pages (a WeasyPrint Document), before they are written as a PDF."""
    from weasyprint import HTML

    document = HTML(string=html, base_url=BASE_URL, url_fetcher=local_fetcher())
    return document.render(
        stylesheets=[print_stylesheet(), _page_size(paper)], font_config=_font_config()
    )


_per_thread = threading.local()


def _font_config():
    """One font configuration per thread, kept: Pango's font caches stay warm between PDFs
    (about a tenth of the rendering time). Pango objects are not shared between threads."""
    if not hasattr(_per_thread, "font_config"):
        from weasyprint.text.fonts import FontConfiguration

        _per_thread.font_config = FontConfiguration()
    return _per_thread.font_config


def print_stylesheet():
    """The parsed print.css, found on disk by the staticfiles finders; re-read when it changes."""
    path = static_file_for(urljoin(urljoin(BASE_URL, settings.STATIC_URL), PRINT_STYLESHEET))
    if path is None:
        raise FileNotFoundError(f"The print stylesheet {PRINT_STYLESHEET} is missing.")
    return _parsed_stylesheet(path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _parsed_stylesheet(path: Path, mtime_ns: int):
    from weasyprint import CSS

    return CSS(filename=str(path), url_fetcher=local_fetcher())


@functools.cache
def _page_size(paper: str):
    from weasyprint import CSS

    return CSS(string=f"@page {{ size: {PAPER_SIZES[paper]}; }}")


def local_fetcher():
    """A WeasyPrint URL fetcher that serves our static files from disk and refuses the rest."""
    return _fetcher_class()()


@functools.cache
def _fetcher_class():
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class LocalStaticFetcher(URLFetcher):
        def fetch(self, url, headers=None):
            path = static_file_for(url)
            if path is None:
                raise RefusedURL(f"Not a local static file, refused: {url[:200]}")
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": content_type})

    return LocalStaticFetcher


def static_file_for(url: str) -> Path | None:
    """The file on disk behind a static URL of this site, or None."""
    static_prefix = urljoin(BASE_URL, settings.STATIC_URL)
    if not url.startswith(static_prefix):
        return None
    name = unquote(urlsplit(url).path)[len(urlsplit(static_prefix).path) :]
    if not name or posixpath.normpath(name) != name or name.startswith(("/", "..")):
        return None
    found = finders.find(name)
    if found:
        return Path(found)
    # In production `{% static %}` names the collected, hashed copy (print.1a2b3c.css).
    try:
        if staticfiles_storage.exists(name):
            return Path(staticfiles_storage.path(name))
    except NotImplementedError:  # a storage that is not on this disk
        return None
    return None
