"""Data preparation: frames and optical flow in the layout of the original data.

The original two-stream fusion code reads (SPEC section 4)::

    DATA_ROOT/jpegs_256/<video>/frame%06d.jpg          RGB frames, numbered from 1
    DATA_ROOT/tvl1_flow/u/<video>/frame%06d.jpg        horizontal flow, numbered from 1
    DATA_ROOT/tvl1_flow/v/<video>/frame%06d.jpg        vertical flow

with ``n`` RGB frames and ``n - 1`` flow frames per direction; flow frame ``k`` is the
motion from RGB frame ``k`` to ``k + 1``. Flow values are clipped to [-20, 20] pixels
and mapped linearly to 0..255 grey (128 = no motion), as the authors' extraction tool
(``feichtenhofer/gpu_flow``) wrote the released UCF101/HMDB51 flow.

Modules: :mod:`.frames` (the layout's paths and the JPEG reader, for prepare, eval and
train), :mod:`.average_image` (the one reading of ``meta.normalization.averageImage``),
:mod:`.video_io` (decoding, resizing), :mod:`.flow` (flow methods and the
grey encoding), :mod:`.writers` (atomic JPEG writing, done-markers),
:mod:`.prepare` (the parallel, resumable driver), :mod:`.splits` (UCF101-format split
lists), :mod:`.synthetic` (the demo dataset), :mod:`.example_videos` (small test videos).
"""
