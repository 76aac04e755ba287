package onnx

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// imageOps is ImageDecoder (opset 20).
func imageOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "ImageDecoder", Since: 20, New: newImageDecoder},
	}
}

// maxImagePixels bounds the images ImageDecoder accepts (a header may
// claim any size).
const maxImagePixels = 1 << 26

// newImageDecoder decodes a 1-D UINT8 encoded image into [H, W, 3] (RGB or
// BGR) or [H, W, 1] (Grayscale, as PIL converts: ITU-R 601 luma rounded
// like PIL). PNG and JPEG are decoded by the standard library, 24- and
// 32-bit uncompressed BMP and binary PNM (P5, P6) here; other formats
// (TIFF, WebP, JPEG 2000) are refused with ErrUnsupported. The decoder
// allocates per run.
func newImageDecoder(n *Node) (Kernel, error) {
	format := n.Attrs.String("pixel_format", "RGB")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if format != "RGB" && format != "BGR" && format != "Grayscale" {
		return nil, fmt.Errorf("%w: ImageDecoder pixel_format %q, want RGB, BGR or Grayscale", ErrAttr, format)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x := in[0]
		if err := checkType("ImageDecoder", x, tensor.Uint8); err != nil {
			return err
		}
		img, err := decodeImage(x.Tensor.Data.([]uint8))
		if err != nil {
			return err
		}
		b := img.Bounds()
		H, W := b.Dy(), b.Dx()
		ch := 3
		if format == "Grayscale" {
			ch = 1
		}
		sh := tmp.Shape(3)
		sh[0], sh[1], sh[2] = int64(H), int64(W), int64(ch)
		if err := out[0].Resize(tensor.Uint8, sh); err != nil {
			return err
		}
		o := out[0].Tensor.Data.([]uint8)
		for y := range H {
			for xx := range W {
				r, g, bl := rgbAt(img, b.Min.X+xx, b.Min.Y+y)
				p := (y*W + xx) * ch
				switch format {
				case "RGB":
					o[p], o[p+1], o[p+2] = r, g, bl
				case "BGR":
					o[p], o[p+1], o[p+2] = bl, g, r
				default:
					o[p] = uint8((uint32(r)*19595 + uint32(g)*38470 + uint32(bl)*7471 + 0x8000) >> 16)
				}
			}
		}
		return nil
	}, nil
}

// rgbAt returns the 8-bit RGB of a pixel (alpha ignored, as converting to
// RGB drops it).
func rgbAt(img image.Image, x, y int) (r, g, b uint8) {
	switch c := img.At(x, y).(type) {
	case color.YCbCr:
		return color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
	case color.Gray:
		return c.Y, c.Y, c.Y
	case color.NRGBA:
		return c.R, c.G, c.B
	case color.RGBA:
		return c.R, c.G, c.B
	default:
		nr := color.NRGBAModel.Convert(c).(color.NRGBA)
		return nr.R, nr.G, nr.B
	}
}

// decodeImage decodes PNG, JPEG, BMP or PNM data, checking the size the
// header claims first.
func decodeImage(data []byte) (image.Image, error) {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG")):
		return decodeChecked(data, png.DecodeConfig, png.Decode)
	case bytes.HasPrefix(data, []byte("\xff\xd8")):
		return decodeChecked(data, jpeg.DecodeConfig, jpeg.Decode)
	case bytes.HasPrefix(data, []byte("BM")):
		return decodeBMP(data)
	case bytes.HasPrefix(data, []byte("P5")), bytes.HasPrefix(data, []byte("P6")):
		return decodePNM(data)
	}
	return nil, fmt.Errorf("%w: ImageDecoder: image format (only PNG, JPEG, BMP and binary PNM are decoded)", ErrUnsupported)
}

func decodeChecked(data []byte, config func(io.Reader) (image.Config, error), decode func(io.Reader) (image.Image, error)) (image.Image, error) {
	cfg, err := config(bytes.NewReader(data))
	if err != nil {
		return nil, badInput("ImageDecoder: %v", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxImagePixels {
		return nil, badInput("ImageDecoder: a %dx%d image", cfg.Width, cfg.Height)
	}
	img, err := decode(bytes.NewReader(data))
	if err != nil {
		return nil, badInput("ImageDecoder: %v", err)
	}
	return img, nil
}

// decodeBMP decodes an uncompressed 24- or 32-bit BMP.
func decodeBMP(data []byte) (image.Image, error) {
	if len(data) < 54 {
		return nil, badInput("ImageDecoder: BMP header truncated")
	}
	le := binary.LittleEndian
	off := int(le.Uint32(data[10:]))
	w, h := int(int32(le.Uint32(data[18:]))), int(int32(le.Uint32(data[22:])))
	bpp, comp := int(le.Uint16(data[28:])), le.Uint32(data[30:])
	if (bpp != 24 && bpp != 32) || (comp != 0 && !(comp == 3 && bpp == 32)) {
		return nil, fmt.Errorf("%w: ImageDecoder: BMP of %d bits, compression %d", ErrUnsupported, bpp, comp)
	}
	bottomUp := h > 0
	if h < 0 {
		h = -h
	}
	if w <= 0 || h == 0 || w*h > maxImagePixels {
		return nil, badInput("ImageDecoder: a %dx%d BMP", w, h)
	}
	stride := (w*bpp/8 + 3) &^ 3
	if off < 0 || off+stride*h > len(data) {
		return nil, badInput("ImageDecoder: BMP pixel data truncated")
	}
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		row := off + y*stride
		if bottomUp {
			row = off + (h-1-y)*stride
		}
		for x := range w {
			p := data[row+x*bpp/8:]
			img.SetNRGBA(x, y, color.NRGBA{R: p[2], G: p[1], B: p[0], A: 255})
		}
	}
	return img, nil
}

// decodePNM decodes binary PGM (P5) and PPM (P6) with a maximum of 255.
func decodePNM(data []byte) (image.Image, error) {
	pos := 2
	var fields [3]int
	for f := range fields {
		for pos < len(data) {
			c := data[pos]
			if c == '#' {
				for pos < len(data) && data[pos] != '\n' {
					pos++
				}
				continue
			}
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				pos++
				continue
			}
			break
		}
		start := pos
		for pos < len(data) && data[pos] >= '0' && data[pos] <= '9' && pos-start < 9 {
			fields[f] = fields[f]*10 + int(data[pos]-'0')
			pos++
		}
		if pos == start {
			return nil, badInput("ImageDecoder: malformed PNM header")
		}
	}
	pos++ // the single whitespace after the maximum
	w, h, maxv := fields[0], fields[1], fields[2]
	ch := 3
	if data[1] == '5' {
		ch = 1
	}
	if maxv != 255 {
		return nil, fmt.Errorf("%w: ImageDecoder: PNM with maximum %d", ErrUnsupported, maxv)
	}
	if w <= 0 || h <= 0 || w*h > maxImagePixels || pos+w*h*ch > len(data) {
		return nil, badInput("ImageDecoder: PNM of %dx%d with %d bytes", w, h, len(data)-pos)
	}
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range w * h {
		p := data[pos+i*ch:]
		c := color.NRGBA{R: p[0], G: p[0], B: p[0], A: 255}
		if ch == 3 {
			c.G, c.B = p[1], p[2]
		}
		img.SetNRGBA(i%w, i/w, c)
	}
	return img, nil
}
