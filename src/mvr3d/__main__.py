import sys

from mvr3d.cli import main

sys.exit(main())
