"""The ``corpus`` command: ``python -m pipelines`` or the installed ``corpus`` script."""
import gc


def main() -> None:
    """Run the ``corpus`` command (:func:`pipelines.cli.main`).

    Python's cyclic garbage collector is off while the command's modules are imported and
    on again before it runs, with every object the imports made frozen
    (:func:`gc.freeze`): the full collections otherwise made during the imports scan the
    200,000-odd objects of Beam, gRPC and pyarrow and find next to nothing (measured: four
    collections, 0.2 s of every build's start). Objects made once the command runs are
    collected as usual.
    """
    gc.disable()
    from pipelines.cli import main as command

    gc.freeze()
    gc.enable()
    command()


if __name__ == "__main__":
    main()
