"""A cover rendition through the local cloud: the uploader's focus travels with the
object, and the window reaches the execution output and the manifest."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from imgpipe.local.cloud import LocalCloud

pytestmark = pytest.mark.xdist_group("local-crops")


def test_an_upload_with_a_focus_gets_a_square_cut_around_it() -> None:
    # Given a 3000 x 1000 grey field with a red object on the right, and a deployment
    # with a fit and a cover rendition
    image = Image.new("RGB", (3000, 1000), (128, 128, 128))
    image.paste((255, 0, 0), (2670, 470, 2730, 530))
    body = io.BytesIO()
    image.save(body, "PNG")
    with LocalCloud.running(parameters={"Renditions": "thumb:320,square:320:cover"}) as cloud:
        # When it is uploaded with x-amz-meta-focus on the object
        record = cloud.upload(
            "crops/field.png",
            body.getvalue(),
            content_type="image/png",
            metadata={"focus": "0.9,0.5"},
        )
        # Then the execution succeeds, the square is cut around the focus, and the
        # manifest says so
        assert record.status == "SUCCEEDED", record.cause
        assert record.output is not None
        squares = [r for r in record.output["renditions"] if r["name"] == "square"]
        assert squares
        for square in squares:
            assert (square["width"], square["height"]) == (320, 320)
            assert square["crop"] == {"x": 2000, "y": 0, "width": 1000, "height": 1000}
            assert square["focus"] == "metadata"
        manifest_key = record.output["manifest"]["key"]
        manifest = json.loads(
            cloud.s3.get_object(Bucket=cloud.output_bucket, Key=manifest_key)["Body"].read()
        )
        assert manifest["renditions"] == record.output["renditions"]
        thumbs = [r for r in manifest["renditions"] if r["name"] == "thumb"]
        assert [(t["crop"], t["focus"]) for t in thumbs] == [(None, None)] * len(thumbs)
