from npvae.cli import main

raise SystemExit(main())
