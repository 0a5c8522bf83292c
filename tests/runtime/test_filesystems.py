"""The one Beam internal the runtime touches still exists in the pinned Beam."""
from pipelines.runtime import filesystems


def test_beam_gcs_credentials_can_be_skipped_for_an_emulator():
    # Fails loudly on a Beam upgrade that moves apache_beam.internal.gcp.auth._Credentials:
    # tests against the GCS emulator would then wait for Beam's credential lookup.
    from apache_beam.internal.gcp import auth

    assert filesystems.skip_credentials_for_emulator()
    assert auth._Credentials._credentials_init and auth._Credentials._credentials is None
