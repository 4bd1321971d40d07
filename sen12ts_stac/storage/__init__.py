"""Where bytes live, in one place: what a location is and how hrefs resolve against it
(:mod:`.locations`), the one HTTP session, retry policy, overall deadline and capped reads
(:mod:`.http`), and file checksums as STAC multihashes (:mod:`.checksums`).

This is the ground floor of the read side: it imports nothing else of sen12ts_stac. Object stores (s3://, az://, gs://) are the next room to add here (issue 10);
today locations are local paths and http(s) URLs.
"""

from sen12ts_stac.storage.checksums import MULTIHASHES, multihash_of, sha256_multihash
from sen12ts_stac.storage.http import MAX_JSON_BYTES, BodyTooLarge, DeadlineExceeded, capped_get, http_session
from sen12ts_stac.storage.locations import folder_of, inside, is_url, norm_url, resolve

__all__ = [
    "MAX_JSON_BYTES", "MULTIHASHES", "BodyTooLarge", "DeadlineExceeded", "capped_get", "folder_of", "http_session", "inside",
    "is_url", "multihash_of", "norm_url", "resolve", "sha256_multihash",
]
