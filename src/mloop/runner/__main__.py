"""``python -m mloop.runner REQUEST``: see :mod:`mloop.runner`."""

from mloop.runner import main

if __name__ == "__main__":
    main()
