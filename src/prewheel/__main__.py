from __future__ import annotations

from prewheel.cli import main

if __name__ == "__main__":
    main()
