"""Draw the dashboard's logo and icon (assets/logo.png, assets/icon.png) with Pillow."""
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ASSETS = Path(__file__).resolve().parent.parent / "assets"
NAVY, GOLD = (31, 78, 121), (212, 160, 23)


def glass(d: ImageDraw.ImageDraw, x: int, y: int, r: int, w: int) -> None:
    d.ellipse([x - r, y - r, x + r, y + r], outline=NAVY, width=w)
    d.line([x + int(r * 0.7), y + int(r * 0.7), x + int(r * 1.6), y + int(r * 1.6)], fill=NAVY, width=int(w * 1.6))
    # a small network inside the lens: the model under examination
    pts = [(x - r // 2, y - r // 3), (x + r // 2, y - r // 3), (x, y + r // 2)]
    for a in pts:
        for b in pts:
            d.line([a, b], fill=GOLD, width=max(2, w // 3))
    for px, py in pts:
        d.ellipse([px - w, py - w, px + w, py + w], fill=GOLD)


def font(size: int):
    for name in ("DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            pass
    return ImageFont.load_default(size=size)


def main() -> None:
    logo = Image.new("RGBA", (450, 160), (0, 0, 0, 0))
    d = ImageDraw.Draw(logo)
    glass(d, 70, 68, 44, 10)
    d.text((160, 28), "Holmes", font=font(64), fill=NAVY)
    d.text((164, 102), "FORENSICS", font=font(30), fill=GOLD)
    logo.save(ASSETS / "logo.png")
    icon = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    glass(ImageDraw.Draw(icon), 64, 64, 44, 10)
    icon.save(ASSETS / "icon.png")


if __name__ == "__main__":
    main()
