"""``python -m streamguard.cli``."""
import sys

from streamguard.cli import main

sys.exit(main())
