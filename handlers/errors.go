package handlers

import (
	"errors"

	"github.com/gofiber/fiber/v2"
)

// apiError answers with a JSON error body, the only error shape Keyflux uses.
func apiError(c *fiber.Ctx, status int, msg string) error {
	return c.Status(status).JSON(fiber.Map{"error": msg})
}

// badRequest is a validation failure: 400, or the status it carries.
type badRequest struct {
	status int
	msg    string
	extra  fiber.Map // more fields of the JSON body, such as an expression error's position
}

func (e *badRequest) Error() string { return e.msg }

func invalid(msg string) error   { return &badRequest{status: fiber.StatusBadRequest, msg: msg} }
func forbidden(msg string) error { return &badRequest{status: fiber.StatusForbidden, msg: msg} }

// ErrorHandler turns every error that reaches Fiber (unknown routes, wrong
// methods, panics caught by the recover middleware) into a JSON error.
func ErrorHandler(c *fiber.Ctx, err error) error {
	var br *badRequest
	if errors.As(err, &br) {
		body := fiber.Map{"error": br.msg}
		for k, v := range br.extra {
			body[k] = v
		}
		return c.Status(br.status).JSON(body)
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		return apiError(c, fe.Code, fe.Message)
	}
	return apiError(c, fiber.StatusInternalServerError, "internal error")
}
