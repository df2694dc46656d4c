from aitre.cli import main

main()
