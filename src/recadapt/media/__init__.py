"""Decoding media files (audio, video frames) into arrays for the encoders.

Everything goes through the ffmpeg binary that the ``imageio-ffmpeg`` wheel ships
(:mod:`recadapt.media.ffmpeg`), so WAV, FLAC, MP3 and the audio and video tracks of MP4 files
decode the same way on every machine, with no system ffmpeg needed.
"""
